"""CUDA problems volconv's own kernels do not cover (all but depthwise) run
on torch's own cuDNN calls, not on volconv's cuDNN route: the same library,
but torch's engine search (cudnn.benchmark, every candidate) and its host
path, so a vt.nn layer on a dense problem costs what the torch.nn layer
costs. (volconv's route keeps six deterministic candidates and measured
0.3x torch on the dense transposed conv and 0.4-0.9x in 16 bits.) Each
function has the signature of the op implementation it stands in for, in
torch's layouts (NCDHW, torch's weights); padding is symmetric here
(functional.py pads the rest first) and zeros."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_CL3D = torch.channels_last_3d
_BACKWARD = torch.ops.aten.convolution_backward.default


def on_volconv_kernels(groups: int, c_in: int, c_out: int, dtype: torch.dtype) -> bool:
    """What volconv's CUDA planner runs on its kernels (depthwise with channel
    multiplier 1: cuda_plan::unsupported_reason) in float32, float16 or
    bfloat16; the rest here, float64 included. Written out rather than asked
    of the planner (`_core._cuda_kernels_run`) because torch.compile traces
    this and cannot call into the extension; a test holds the two equal."""
    return groups == c_in == c_out and dtype != torch.float64


def _symmetric(op: str, lo: list[int], hi: list[int], padding_mode: str) -> list[int]:
    if list(lo) != list(hi) or padding_mode != "zeros":
        raise ValueError(
            f"[volconv.torch.{op}] On CUDA a convolution that is not depthwise runs on torch's cuDNN calls, "
            f"which pad both ends alike with zeros, but got padding low {tuple(lo)}, high {tuple(hi)} and "
            f"padding_mode {padding_mode!r}; volconv.torch.{op} pads a copy for you."
        )
    return list(lo)


def _cl3d(t: Tensor) -> Tensor:
    return t.contiguous(memory_format=_CL3D)


def conv3d(input, weight, bias, stride, lo, hi, dilation, groups, padding_mode) -> Tensor:
    pad = _symmetric("conv3d", lo, hi, padding_mode)
    return _cl3d(F.conv3d(input, weight, bias, stride, pad, dilation, groups))


def _shape_only(like: Tensor, size) -> Tensor:
    """An operand convolution_backward needs only for its shape (never
    read), as torch.nn.grad passes it: one element, expanded."""
    return like.new_empty(1).expand(list(size))


def _gradient(which: int, grad, input, weight, stride, pad, dilation, transposed, output_padding, groups):
    """convolution_backward's input (0) or weight (1) gradient, channels_last_3d."""
    mask = [which == 0, which == 1, False]
    out = _BACKWARD(
        grad, input, weight, None, stride, pad, dilation, transposed, output_padding, groups, mask
    )
    return _cl3d(out[which])


def conv3d_grad_input(grad, weight, input_size, stride, lo, hi, dilation, groups, padding_mode) -> Tensor:
    pad = _symmetric("conv3d", lo, hi, padding_mode)
    return _gradient(
        0, grad, _shape_only(grad, input_size), weight, stride, pad, dilation, False, [0] * 3, groups
    )


def conv3d_grad_weight(input, grad, weight_size, stride, lo, hi, dilation, groups, padding_mode) -> Tensor:
    pad = _symmetric("conv3d", lo, hi, padding_mode)
    return _gradient(
        1, grad, input, _shape_only(grad, weight_size), stride, pad, dilation, False, [0] * 3, groups
    )


def conv_transpose3d(input, weight, bias, stride, lo, hi, output_padding, dilation, groups) -> Tensor:
    pad = _symmetric("conv_transpose3d", lo, hi, "zeros")
    return _cl3d(F.conv_transpose3d(input, weight, bias, stride, pad, output_padding, groups, dilation))


def conv_transpose3d_grad_input(grad, weight, input_size, stride, lo, hi, output_padding, dilation, groups):
    pad = _symmetric("conv_transpose3d", lo, hi, "zeros")
    return _cl3d(F.conv3d(grad, weight, None, stride, pad, dilation, groups))


def conv_transpose3d_grad_weight(input, grad, weight_size, stride, lo, hi, output_padding, dilation, groups):
    pad = _symmetric("conv_transpose3d", lo, hi, "zeros")
    dummy = _shape_only(grad, weight_size)
    return _gradient(1, grad, input, dummy, stride, pad, dilation, True, output_padding, groups)
