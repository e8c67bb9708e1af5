"""Independent float64 references for conv_general, conv_transpose3d and
conv3d's gradients, written from each op's definition in plain numpy (they
share nothing with volconv):
- general: insert the input-dilation zeros, pad (negative: crop), reverse the
  kernel when flip, then the forward conv3d reference;
- transposed: scatter every input element times every tap to
  i * stride - pad_lo + k * dilation, then crop (PyTorch's definition);
- input gradient: the same scatter of grad_output through conv3d's taps;
- weight gradient: per tap, the strided window of the padded input against
  grad_output, summed over positions;
- the skip-rule weight gradients (conv_transpose3d's, conv_general's): per
  tap, only the products whose read lands on a real element (no padding, no
  inserted zero), so a NaN / inf never meets a zero."""

from __future__ import annotations

import numpy as np

from reference import TOLERANCE, assert_within, conv3d_reference


def _pad_or_crop(x, lo, hi):
    """Pads spatial dims with zeros (negative amounts crop)."""
    x = np.pad(x, [(0, 0)] + [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)] + [(0, 0)])
    index = tuple(slice(max(-a, 0), x.shape[1 + i] - max(-b, 0)) for i, (a, b) in enumerate(zip(lo, hi)))
    return x[(slice(None),) + index]


def conv_general_reference(
    x,
    w,
    stride=(1, 1, 1),
    pad_lo=(0, 0, 0),
    pad_hi=(0, 0, 0),
    kernel_dilation=(1, 1, 1),
    input_dilation=(1, 1, 1),
    groups=1,
    flip=False,
):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, d, h, wd, c = x.shape
    dil = np.zeros(
        (
            n,
            (d - 1) * input_dilation[0] + 1,
            (h - 1) * input_dilation[1] + 1,
            (wd - 1) * input_dilation[2] + 1,
            c,
        )
    )
    dil[:, :: input_dilation[0], :: input_dilation[1], :: input_dilation[2]] = x
    xp = _pad_or_crop(dil, pad_lo, pad_hi)
    if flip:
        w = w[:, ::-1, ::-1, ::-1]
    return conv3d_reference(xp, w, stride=stride, dilation=kernel_dilation, groups=groups)


def conv_transpose3d_reference(
    x,
    w,
    stride=(1, 1, 1),
    pad_lo=(0, 0, 0),
    pad_hi=(0, 0, 0),
    dilation=(1, 1, 1),
    output_padding=(0, 0, 0),
    groups=1,
):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, *size, c_in = x.shape
    c_out, *kernel, c_in_g = w.shape
    cog = c_out // groups
    full = [
        (size[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 + output_padding[i] for i in range(3)
    ]
    y = np.zeros((n, *full, c_out))
    xg = x.reshape(n, *size, groups, c_in_g)
    wg = w.reshape(groups, cog, *kernel, c_in_g)
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            for e in range(kernel[2]):
                contrib = np.einsum("ndhwgc,goc->ndhwgo", xg, wg[:, :, a, b, e, :]).reshape(n, *size, c_out)
                s0, s1, s2 = a * dilation[0], b * dilation[1], e * dilation[2]
                y[
                    :,
                    s0 : s0 + (size[0] - 1) * stride[0] + 1 : stride[0],
                    s1 : s1 + (size[1] - 1) * stride[1] + 1 : stride[1],
                    s2 : s2 + (size[2] - 1) * stride[2] + 1 : stride[2],
                ] += contrib
    out = [full[i] - pad_lo[i] - pad_hi[i] for i in range(3)]
    return y[
        :, pad_lo[0] : pad_lo[0] + out[0], pad_lo[1] : pad_lo[1] + out[1], pad_lo[2] : pad_lo[2] + out[2]
    ]


def _windows(shape_in, kernel, stride, pad_lo, pad_hi, dilation):
    """(tap, slices into the padded input) for each tap, and the output size."""
    padded = [shape_in[i] + pad_lo[i] + pad_hi[i] for i in range(3)]
    out = [(padded[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(3)]
    for a in range(kernel[0]):
        for b in range(kernel[1]):
            for e in range(kernel[2]):
                starts = (a * dilation[0], b * dilation[1], e * dilation[2])
                yield (
                    (a, b, e),
                    tuple(
                        slice(starts[i], starts[i] + stride[i] * (out[i] - 1) + 1, stride[i])
                        for i in range(3)
                    ),
                )


def conv3d_grad_input_reference(
    gy, w, input_shape, stride=(1, 1, 1), pad_lo=(0, 0, 0), pad_hi=(0, 0, 0), dilation=(1, 1, 1), groups=1
):
    gy = np.asarray(gy, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, *size, c_in = input_shape
    c_out, *kernel, c_in_g = w.shape
    cog = c_out // groups
    dxp = np.zeros((n, *[size[i] + pad_lo[i] + pad_hi[i] for i in range(3)], groups, c_in_g))
    gg = gy.reshape(*gy.shape[:4], groups, cog)
    wg = w.reshape(groups, cog, *kernel, c_in_g)
    for (a, b, e), win in _windows(size, kernel, stride, pad_lo, pad_hi, dilation):
        dxp[(slice(None),) + win] += np.einsum("ndhwgo,goc->ndhwgc", gg, wg[:, :, a, b, e, :])
    dx = dxp[
        :, pad_lo[0] : pad_lo[0] + size[0], pad_lo[1] : pad_lo[1] + size[1], pad_lo[2] : pad_lo[2] + size[2]
    ]
    return dx.reshape(n, *size, c_in)


def conv3d_grad_weight_reference(
    x, gy, weight_shape, stride=(1, 1, 1), pad_lo=(0, 0, 0), pad_hi=(0, 0, 0), dilation=(1, 1, 1), groups=1
):
    x = np.asarray(x, dtype=np.float64)
    gy = np.asarray(gy, dtype=np.float64)
    c_out, *kernel, c_in_g = weight_shape
    cog = c_out // groups
    xp = np.pad(x, [(0, 0)] + [(lo, hi) for lo, hi in zip(pad_lo, pad_hi)] + [(0, 0)])
    xg = xp.reshape(*xp.shape[:4], groups, c_in_g)
    gg = gy.reshape(*gy.shape[:4], groups, cog)
    dw = np.zeros((groups, cog, *kernel, c_in_g))
    for (a, b, e), win in _windows(x.shape[1:4], kernel, stride, pad_lo, pad_hi, dilation):
        dw[:, :, a, b, e, :] = np.einsum("ndhwgc,ndhwgo->goc", xg[(slice(None),) + win], gg)
    return dw.reshape(weight_shape)


def _real_reads(positions, size, step=1):
    """Which of the (dilated-coordinate) positions land on a real element of
    an axis of `size` elements spaced `step` apart, and that element's index."""
    inside = (positions >= 0) & (positions <= (size - 1) * step) & (positions % step == 0)
    return inside, positions[inside] // step


def _tap_pairs_grad_weight(x, gy, weight_shape, groups, pairs):
    """dw[k] = sum of gy * x over the element pairs pairs(k) lists: per axis,
    the x indices and the gy indices read together at tap k."""
    x = np.asarray(x, dtype=np.float64)
    gy = np.asarray(gy, dtype=np.float64)
    c_out, *kernel, c_in_g = weight_shape
    cog = c_out // groups
    xg = x.reshape(*x.shape[:4], groups, c_in_g)
    gg = gy.reshape(*gy.shape[:4], groups, cog)
    dw = np.zeros((groups, cog, *kernel, c_in_g))
    for k in np.ndindex(*kernel):
        xi, gi = zip(*pairs(k, x.shape, gy.shape))
        xs = xg[:, xi[0]][:, :, xi[1]][:, :, :, xi[2]]
        gs = gg[:, gi[0]][:, :, gi[1]][:, :, :, gi[2]]
        dw[(slice(None), slice(None), *k)] = np.einsum("ndhwgc,ndhwgo->goc", xs, gs)
    return dw.reshape(weight_shape)


def conv_general_grad_weight_skip_reference(
    x, gy, weight_shape, stride, pad_lo, kernel_dilation, input_dilation, groups
):
    """dw[k] = sum over the outputs o of gy[o] * x[r / input_dilation] with
    r = o * stride - pad_lo + k * kernel_dilation, for the r that are real
    input elements only (not the padding, not an inserted zero)."""

    def pairs(k, x_shape, gy_shape):
        for a in range(3):
            o = np.arange(gy_shape[1 + a])
            inside, xi = _real_reads(
                o * stride[a] - pad_lo[a] + k[a] * kernel_dilation[a], x_shape[1 + a], input_dilation[a]
            )
            yield xi, o[inside]

    return _tap_pairs_grad_weight(x, gy, weight_shape, groups, pairs)


def conv_transpose3d_grad_weight_skip_reference(x, gy, weight_shape, stride, pad_lo, dilation, groups):
    """The transposed conv scatters x[i] * w[k] to o = i * stride - pad_lo +
    k * dilation and keeps the o inside its output, so dw[k] = sum over the
    inputs i whose o is inside gy of gy[o] * x[i] (weight (C_out, k...,
    C_in / groups): x has C_in channels, gy C_out)."""

    def pairs(k, x_shape, gy_shape):
        for a in range(3):
            i = np.arange(x_shape[1 + a])
            inside, o = _real_reads(i * stride[a] - pad_lo[a] + k[a] * dilation[a], gy_shape[1 + a])
            yield i[inside], o

    return _tap_pairs_grad_weight(x, gy, weight_shape, groups, pairs)


def assert_close(y, ref, scale, dtype_name, what=""):
    """|y - ref| <= TOLERANCE[dtype] * scale per element, where scale is the
    reference evaluated on absolute values (the sum of |terms|)."""
    # float16 results below 2^-14 are subnormal: rounded to a step of 2^-24.
    bound = TOLERANCE[dtype_name] * scale + (2.0**-24 if dtype_name == "float16" else 1e-30)
    assert_within(y, ref, bound, dtype_name, what)


def assert_conv3d_close(y, x, w, dtype_name, what="", **params):
    """A conv3d result against the float64 reference of the (already rounded)
    x and w, per element within assert_close's bound."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    scale = conv3d_reference(np.abs(x), np.abs(w), **params)
    assert_close(y, conv3d_reference(x, w, **params), scale, dtype_name, what)


def assert_same_nonfinite(ours, ref, what=""):
    """NaN, +inf and -inf at the same elements of ours as of ref."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    for name, mask in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        wrong = mask(ours) != mask(ref)
        assert not wrong.any(), (
            f"{what}: {name} at {int(wrong.sum())} outputs differs from the reference "
            f"(ours {int(mask(ours).sum())}, reference {int(mask(ref).sum())}), first at "
            f"{tuple(int(i) for i in np.argwhere(wrong)[0])}"
        )
