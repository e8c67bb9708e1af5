"""volconv's CUDA kernels (the problems _cudnn_torch.on_volconv_kernels keeps
off torch's calls: depthwise, channel multiplier 1, 32 and 16 bits) called
on torch's NCDHW tensors directly. Each operand's NDHWC view is handed to
the core as its address, shape and strides, without a permuted tensor made
and without the plain ops' parsing of their arguments (on a small problem
those were most of a call's host time); the result is allocated
channels_last_3d, as the op's fake kernel declares it, and the call is
ordered on the tensors' current stream. The kernels pad with zeros only
(functional.py pads other modes first) and have no fused epilogue, so bias,
activation and residual follow as torch ops (_epilogue.py). Each function
has the signature of the op implementation it stands in for (_ops.py)."""

from __future__ import annotations

import torch
from torch import Tensor

from volconv import _core, _cuda
from volconv._arrays import _check_float, torch_dtypes
from volconv._params import compact_geometry, conv_params
from volconv._training import _transpose_params
from volconv.torch._epilogue import epilogue

_CL3D = torch.channels_last_3d

# The core's entry points by op name, looked up at each call (a test spies on
# which problems reach them).
CORE_OPS = {
    "conv3d": _core._cuda_conv3d,
    "conv3d_grad_input": _core._cuda_conv3d_grad_input,
    "conv3d_grad_weight": _core._cuda_conv3d_grad_weight,
    "conv_transpose3d": _core._cuda_conv_transpose3d,
    "conv_transpose3d_grad_input": _core._cuda_conv_transpose3d_grad_input,
    "conv_transpose3d_grad_weight": _core._cuda_conv_transpose3d_grad_weight,
}


def _raw_ndhwc(t: Tensor) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """t's NDHWC view as the core reads it: torch's (N, C, D, H, W) with C
    moved last. The same move turns a conv3d weight (C_out, C_in / groups,
    k...) into volconv's (C_out, k..., C_in / groups), and a depthwise
    transposed weight (C, 1, k...) into volconv's (C, k..., 1)."""
    n, c, d, h, w = t.shape
    sn, sc, sd, sh, sw = t.stride()
    return t.data_ptr(), (n, d, h, w, c), (sn, sd, sh, sw, sc)


def _run(op: str, a: Tensor, b: Tensor, result_shape: list[int] | tuple[int, ...], params) -> Tensor:
    """CORE_OPS[op](a, b) into a new NCDHW channels_last_3d result of
    `result_shape` (torch's order) in a's dtype, on a's current stream. The
    core refuses what its kernels do not run (float64, two dtypes)."""
    dtypes = torch_dtypes()
    da, db = dtypes.get(a.dtype), dtypes.get(b.dtype)
    for t, what, dt in ((a, "first operand", da), (b, "second operand", db)):
        if dt is None:
            _check_float(str(t.dtype).replace("torch.", ""), op, what)
    index = a.get_device()
    stream = _cuda._external_stream(index, _cuda._torch_current_stream(torch, index))
    out = torch.empty(result_shape, dtype=a.dtype, device=a.device, memory_format=_CL3D)
    CORE_OPS[op](_raw_ndhwc(a), da, _raw_ndhwc(b), db, _raw_ndhwc(out), da, params, stream)
    return out


def _params(op, stride, lo, hi, dilation, groups, kernel, padding_mode):
    stride_, padding, dilation_ = compact_geometry(stride, lo, hi, dilation)
    return conv_params(padding, stride_, dilation_, groups, kernel, op, padding_mode)


def _torch_order(ndhwc: tuple[int, ...] | list[int]) -> list[int]:
    n, d, h, w, c = ndhwc
    return [n, c, d, h, w]


def conv3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    residual: Tensor | None,
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    activation: str | None,
    padding_mode: str = "zeros",
) -> Tensor:
    p = _params(
        "conv3d", stride, padding_lo, padding_hi, dilation, groups, tuple(weight.shape[2:]), padding_mode
    )
    shape = _core._conv3d_output_shape(_raw_ndhwc(input)[1], _raw_ndhwc(weight)[1], p)
    y = _run("conv3d", input, weight, _torch_order(shape), p)
    return epilogue(y, bias, activation, residual)


def conv3d_grad_input(
    grad: Tensor,
    weight: Tensor,
    input_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    padding_mode: str = "zeros",
) -> Tensor:
    op = "conv3d_grad_input"
    p = _params(op, stride, padding_lo, padding_hi, dilation, groups, tuple(weight.shape[2:]), padding_mode)
    return _run(op, grad, weight, input_size, p)


def conv3d_grad_weight(
    input: Tensor,
    grad: Tensor,
    weight_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    padding_mode: str = "zeros",
) -> Tensor:
    op = "conv3d_grad_weight"
    p = _params(op, stride, padding_lo, padding_hi, dilation, groups, tuple(weight_size[2:]), padding_mode)
    return _run(op, input, grad, weight_size, p)


def conv_transpose3d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    op = "conv_transpose3d"
    p = _transpose_params(op, stride, (padding_lo, padding_hi), dilation, output_padding, groups)
    shape = _core._conv_transpose3d_output_shape(_raw_ndhwc(input)[1], _raw_ndhwc(weight)[1], p)
    y = _run(op, input, weight, _torch_order(shape), p)
    return epilogue(y, bias, None, None)


def conv_transpose3d_grad_input(
    grad: Tensor,
    weight: Tensor,
    input_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    op = "conv_transpose3d_grad_input"
    p = _transpose_params(op, stride, (padding_lo, padding_hi), dilation, output_padding, groups)
    return _run(op, grad, weight, input_size, p)


def conv_transpose3d_grad_weight(
    input: Tensor,
    grad: Tensor,
    weight_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    op = "conv_transpose3d_grad_weight"
    p = _transpose_params(op, stride, (padding_lo, padding_hi), dilation, output_padding, groups)
    return _run(op, input, grad, weight_size, p)
