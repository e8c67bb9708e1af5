"""conv_general's input gradient, as one more conv_general (volconv has no
kernel of its own for it): the cotangent, dilated by the forward's stride,
correlated with the per-group transposed weight, reversed the other way,
and read at the forward's input-dilation stride."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

import volconv as vc


def _group_transposed(w: mx.array, groups: int) -> mx.array:
    """(C_out, k..., C_in/g) -> (C_in, k..., C_out/g), group by group."""
    c_out, kd, kh, kw, c_in_g = w.shape
    g = w.reshape(groups, c_out // groups, kd, kh, kw, c_in_g)
    return g.transpose(0, 5, 2, 3, 4, 1).reshape(groups * c_in_g, kd, kh, kw, c_out // groups)


def _trim(cot: mx.array, axis: int, stride: int, lo: int, hi: int) -> tuple[mx.array, int, int]:
    """Negative padding of the stride-dilated cotangent (volconv takes none)
    as a slice of the cotangent itself plus a non-negative padding."""
    n = cot.shape[axis]
    first = 0
    if lo < 0:
        first = -(lo // stride)  # ceil(-lo / stride) elements dropped in front
        lo += first * stride
    last = n  # one past the last element kept
    if hi < 0:
        kept = stride * (n - first - 1) + 1 + hi  # dilated length left after the crop
        last = first + ((kept - 1) // stride + 1 if kept > 0 else 0)
        hi = kept - (stride * (last - first - 1) + 1) if last > first else 0
    index = [slice(None)] * 5
    index[axis] = slice(first, max(last, first))
    return cot[tuple(index)], lo, hi


def conv_general_grad_input(
    cotangent: mx.array, w: mx.array, input_shape: tuple[int, ...], p: Any, stream: Any
) -> mx.array:
    """d(conv_general(x, w, p)) / dx applied to `cotangent`, of shape input_shape."""
    lo, hi = [], []
    cot = cotangent
    for i in range(3):
        wt_size = p.kernel_dilation[i] * (w.shape[1 + i] - 1) + 1
        in_size = p.input_dilation[i] * (input_shape[1 + i] - 1) + 1
        out_size = p.stride[i] * (cotangent.shape[1 + i] - 1) + 1
        # In the padded, dilated input, position plo + t gets cotangent taps at
        # (plo + t - dilation * j) / stride: a correlation padded wt_size - 1 - plo low.
        a = wt_size - 1 - p.padding_lo[i]
        b = in_size - out_size + p.padding_lo[i]
        cot, a, b = _trim(cot, 1 + i, p.stride[i], a, b)
        lo.append(a)
        hi.append(b)
    if 0 in cot.shape:  # every cotangent element lands in the forward's padding
        return mx.zeros(input_shape, dtype=mx.promote_types(cotangent.dtype, w.dtype))
    return vc.conv_general(
        cot,
        _group_transposed(w, p.groups),
        stride=p.input_dilation,
        padding=(lo, hi),
        kernel_dilation=p.kernel_dilation,
        input_dilation=p.stride,
        groups=p.groups,
        flip=not p.flip,
        stream=stream,
    )
