"""The padding modes volconv.torch takes, as torch.nn.Conv3d names them.
The CPU kernels read the border themselves (volconv.conv3d's and its
gradients' `padding_mode=`): no padded copy of the input. The CUDA backend
pads with zeros only (volconv's kernels: depthwise problems), and torch's
cuDNN calls (the rest, _cudnn_torch.py) both ends of an axis alike, so on
CUDA tensors what they cannot express becomes an F.pad of the input
(autograd differentiates it) or a crop of the transposed conv's output."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from volconv import _core
from volconv._params import conv_params
from volconv.torch._cudnn_torch import on_volconv_kernels

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def cuda_conv3d_padding(
    input: Tensor, weight: Tensor, lo, hi, stride, dilation, groups: int, padding_mode: str
) -> tuple[Tensor, tuple, tuple, str]:
    """(input, lo, hi, padding_mode) as conv3d's CUDA route takes them: a
    padding mode other than zeros padded into a copy (after the checks the
    kernels' own padding gets, with the same messages), as torch.nn.Conv3d
    does; asymmetric zeros for cuDNN padded by the difference."""
    if padding_mode != "zeros":
        n, c, d, h, w = input.shape
        params = conv_params(
            (lo, hi), stride, dilation, groups, tuple(weight.shape[2:]), padding_mode=padding_mode
        )
        _core._conv3d_output_shape(
            (n, d, h, w, c), (weight.shape[0], *weight.shape[2:], weight.shape[1]), params
        )
        padded = F.pad(input, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]), mode=padding_mode)
        return padded, (0, 0, 0), (0, 0, 0), "zeros"
    if tuple(lo) == tuple(hi) or on_volconv_kernels(groups, input.shape[1], weight.shape[0], input.dtype):
        return input, lo, hi, padding_mode
    both = tuple(min(a, b) for a, b in zip(lo, hi))
    extra_lo = [a - m for a, m in zip(lo, both)]
    extra_hi = [b - m for b, m in zip(hi, both)]
    padded = F.pad(input, (extra_lo[2], extra_hi[2], extra_lo[1], extra_hi[1], extra_lo[0], extra_hi[0]))
    return padded, both, both, padding_mode


def cuda_transpose_padding(
    weight: Tensor, lo, hi, groups: int
) -> tuple[tuple, tuple, Callable[[Tensor], Tensor] | None]:
    """(lo, hi, crop) for conv_transpose3d's CUDA route: a transpose's padding
    crops its output, so asymmetric padding for cuDNN is the symmetric part
    and then a crop of the rest (None: nothing to crop)."""
    c_in, c_out = weight.shape[0], weight.shape[1] * groups
    if tuple(lo) == tuple(hi) or on_volconv_kernels(groups, c_in, c_out, weight.dtype):
        return lo, hi, None
    both = tuple(min(a, b) for a, b in zip(lo, hi))

    def crop(y: Tensor) -> Tensor:
        d, h, w = y.shape[2:]
        cut = [(a - m, n - (b - m)) for a, b, m, n in zip(lo, hi, both, (d, h, w))]
        return y[:, :, cut[0][0] : cut[0][1], cut[1][0] : cut[1][1], cut[2][0] : cut[2][1]].contiguous(
            memory_format=torch.channels_last_3d
        )

    return both, both, crop
