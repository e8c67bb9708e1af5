"""volconv's convolutions as differentiable MLX functions. The Python route:
each call wraps the volconv op in an mx.custom_function whose vjp calls
volconv's gradient kernels (MLX evaluates the operands when volconv reads
them). Where the C++ route is built (_native.py), conv3d and
conv_transpose3d become lazy MLX primitives instead."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

import volconv as vc
from volconv._params import conv_params
from volconv._training import (
    _conv_general_grad_weight,
    _conv_transpose3d_grad_input,
    _conv_transpose3d_grad_weight,
    _general_params,
    _transpose_params,
)

from ._epilogue import activation_grad, apply_epilogue, check_activation
from ._general_grad import conv_general_grad_input
from ._guard import SECOND_ORDER, guard
from ._native import primitive
from ._padding import check_padding_mode


def _check_arrays(op: str, **named: Any) -> None:
    """volconv.mlx takes mlx arrays only (a result of another kind could not
    join MLX's graph); input and weight are 5-D."""
    for what, a in named.items():
        if a is None:
            continue
        if not isinstance(a, mx.array):
            raise TypeError(f"[{op}] Expected the {what} to be an mlx.core.array but got {type(a).__name__}.")
        if what in ("input", "weight") and a.ndim != 5:
            layout = "(N, D, H, W, C_in)" if what == "input" else "(C_out, KD, KH, KW, C_in // groups)"
            raise ValueError(
                f"[{op}] Expected the {what} to have 5 dimensions {layout} but got an array of shape "
                f"{tuple(a.shape)} with {a.ndim} dimensions."
            )


def _as(a: mx.array, like: mx.array) -> mx.array:
    """A gradient in its primal's dtype (volconv returns the promoted one)."""
    return a if a.dtype == like.dtype else a.astype(like.dtype)


def _once(op: str, grads: tuple[mx.array, ...], *inputs: mx.array) -> tuple[mx.array, ...]:
    """The gradients, each joined to the vjp's inputs by a node that warns if
    a second-order gradient reaches it (it would be zero)."""
    message = SECOND_ORDER.format(op=op)
    return tuple(guard(g, *inputs, message=message) for g in grads)


def _native() -> Any:
    """The C++ route's module, or None; its own copy of volconv's CPU backend
    gets volconv's thread count (set only on a change: setting it waits for
    running kernels)."""
    native = primitive()
    if native is not None and native.get_num_threads() != vc.get_num_threads():
        native.set_num_threads(vc.get_num_threads())
    return native


def _call(op: str, fn: Any, *arrays: mx.array) -> Any:
    try:
        # volconv reads the operands' memory: they are evaluated here, where
        # MLX says so clearly if it cannot (inside mx.compile or mx.vmap).
        mx.eval(*arrays)
        return fn(*arrays)
    except ValueError as e:
        if str(e).startswith("[eval] Attempting to eval"):
            raise ValueError(
                f"[{op}] volconv.mlx ops cannot run inside mx.compile or mx.vmap: they evaluate their "
                "operands at each call (volconv runs outside MLX's graph). Call them outside the "
                "compiled function; mx.grad, mx.value_and_grad, mx.vjp and nn.value_and_grad work."
            ) from None
        raise


def conv3d(
    input: mx.array,
    weight: mx.array,
    /,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    stream: Any = None,
    bias: mx.array | None = None,
    activation: str | None = None,
    residual: mx.array | None = None,
    padding_mode: str = "zeros",
) -> mx.array:
    """mlx.core.conv3d, differentiable (mx.grad, mx.vjp, nn.value_and_grad)
    with respect to input, weight, bias and residual, with any groups.

    ``activation(conv3d(input, weight) + bias) + residual`` is fused in the
    forward kernel on both routes (see volconv.conv3d). ``padding_mode``: "zeros",
    "reflect", "replicate" or "circular" (PyTorch's modes)."""
    op = "conv3d"
    _check_arrays(op, input=input, weight=weight, bias=bias, residual=residual)
    check_activation(activation, op)
    mode = check_padding_mode(padding_mode, op)
    kw: dict[str, Any] = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, stream=stream)
    if mode != "zeros":  # the kernels read the border (no padded copy); the Python route has the keyword
        kw["padding_mode"] = mode
    native = _native()
    if native is not None and stream is None and "padding_mode" not in kw:
        # The C++ route: a lazy MLX primitive with the epilogue fused, as on the
        # Python route (its vjp recomputes the pre-activation for silu / gelu_tanh).
        p = conv_params(kw["padding"], stride, dilation, groups, weight.shape[1:4], op)
        return native.conv3d(
            input,
            weight,
            p.stride,
            p.padding_lo,
            p.padding_hi,
            p.dilation,
            p.groups,
            bias=bias,
            activation=activation or "none",
            residual=residual,
        )
    has_bias, has_residual = bias is not None, residual is not None

    def unpack(arrays: tuple[mx.array, ...]) -> tuple[Any, Any, Any, Any]:
        x, w, *rest = arrays
        b = rest.pop(0) if has_bias else None
        r = rest.pop(0) if has_residual else None
        return x, w, b, r

    @mx.custom_function
    def forward(*arrays: mx.array) -> mx.array:
        x, w, b, r = unpack(arrays)
        return vc.conv3d(x, w, **kw, bias=b, activation=activation, residual=r)

    @forward.vjp
    def backward(arrays: tuple[mx.array, ...], cotangent: mx.array, output: mx.array) -> tuple[mx.array, ...]:
        x, w, b, r = unpack(arrays)
        dz = cotangent
        if activation is not None:
            if activation == "relu" and r is None:
                # relu's output says where its input was positive: nothing to recompute.
                # (A NaN pre-activation passes the cotangent, as torch's threshold_backward.)
                dz = mx.where(output <= 0, mx.zeros_like(cotangent), cotangent)
            else:
                # The pre-activation is recomputed (one forward conv, bias fused) rather
                # than saved: saving it would cost the output's size per layer and an
                # unfused forward.
                z = vc.conv3d(x, w, **kw, bias=b)
                dz = activation_grad(activation, z, cotangent)
        grads = [
            _as(vc.conv3d_grad_input(dz, w, x.shape, **kw), x),
            _as(vc.conv3d_grad_weight(x, dz, w.shape, **kw), w),
        ]
        if b is not None:
            grads.append(dz.sum(axis=(0, 1, 2, 3)).astype(b.dtype))
        if r is not None:
            grads.append(_as(cotangent, r))
        return _once(op, tuple(grads), cotangent, *arrays)

    arrays = [a for a in (input, weight, bias, residual) if a is not None]
    return _call(op, forward, *arrays)


def conv_transpose3d(
    input: mx.array,
    weight: mx.array,
    /,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    output_padding: Any = 0,
    groups: int = 1,
    *,
    stream: Any = None,
    bias: mx.array | None = None,
    activation: str | None = None,
    residual: mx.array | None = None,
) -> mx.array:
    """mlx.core.conv_transpose3d, differentiable, with any groups (see
    volconv.conv_transpose3d). ``bias``, ``activation`` and ``residual`` are
    applied after the convolution with MLX ops (not fused)."""
    op = "conv_transpose3d"
    _check_arrays(op, input=input, weight=weight, bias=bias, residual=residual)
    check_activation(activation, op)
    kw = dict(
        stride=stride,
        padding=padding,
        dilation=dilation,
        output_padding=output_padding,
        groups=groups,
        stream=stream,
    )
    native = _native()
    if native is not None and stream is None:
        p = _transpose_params(op, stride, padding, dilation, output_padding, groups)
        y = native.conv_transpose3d(
            input, weight, p.stride, p.padding_lo, p.padding_hi, p.dilation, p.output_padding, p.groups
        )
        return apply_epilogue(y, bias, activation, residual, op)

    @mx.custom_function
    def forward(x: mx.array, w: mx.array) -> mx.array:
        return vc.conv_transpose3d(x, w, **kw)

    @forward.vjp
    def backward(arrays: tuple[mx.array, ...], cotangent: mx.array, output: mx.array) -> tuple[mx.array, ...]:
        x, w = arrays
        dx = _as(_conv_transpose3d_grad_input(cotangent, w, x.shape, **kw), x)
        dw = _as(_conv_transpose3d_grad_weight(x, cotangent, w.shape, **kw), w)
        return _once(op, (dx, dw), cotangent, x, w)

    return apply_epilogue(_call(op, forward, input, weight), bias, activation, residual, op)


def conv_general(
    input: mx.array,
    weight: mx.array,
    /,
    stride: Any = 1,
    padding: Any = 0,
    kernel_dilation: Any = 1,
    input_dilation: Any = 1,
    groups: int = 1,
    flip: bool = False,
    *,
    stream: Any = None,
    bias: mx.array | None = None,
    activation: str | None = None,
    residual: mx.array | None = None,
) -> mx.array:
    """mlx.core.conv_general in 3-D, differentiable, with any groups (see
    volconv.conv_general). ``bias``, ``activation`` and ``residual`` are
    applied after the convolution with MLX ops (not fused)."""
    op = "conv_general"
    _check_arrays(op, input=input, weight=weight, bias=bias, residual=residual)
    check_activation(activation, op)
    p = _general_params(op, stride, padding, kernel_dilation, input_dilation, groups, flip)
    kw = dict(
        stride=p.stride,
        padding=(p.padding_lo, p.padding_hi),
        kernel_dilation=p.kernel_dilation,
        input_dilation=p.input_dilation,
        groups=p.groups,
        flip=p.flip,
        stream=stream,
    )

    @mx.custom_function
    def forward(x: mx.array, w: mx.array) -> mx.array:
        return vc.conv_general(x, w, **kw)

    @forward.vjp
    def backward(arrays: tuple[mx.array, ...], cotangent: mx.array, output: mx.array) -> tuple[mx.array, ...]:
        x, w = arrays
        dx = _as(conv_general_grad_input(cotangent, w, x.shape, p, stream), x)
        dw = _as(_conv_general_grad_weight(x, cotangent, w.shape, **kw), w)
        return _once(op, (dx, dw), cotangent, x, w)

    return apply_epilogue(_call(op, forward, input, weight), bias, activation, residual, op)
