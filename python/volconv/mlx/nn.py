"""mlx.nn.Conv3d and mlx.nn.ConvTranspose3d on volconv: the same positional
arguments and parameters (weight (C_out, KD, KH, KW, C_in // groups), bias
(C_out,)), so weights saved from mlx.nn load unchanged; groups,
padding_mode and a fused activation are keyword-only extras."""

from __future__ import annotations

import math
from typing import Any, Union

import mlx.core as mx
import mlx.nn

from ._epilogue import check_activation
from ._ops import conv3d, conv_transpose3d
from ._padding import check_padding_mode

_Size = Union[int, tuple]


def _triple(v: _Size) -> tuple:
    return (v, v, v) if isinstance(v, int) else tuple(v)


def _check_groups(op: str, in_channels: int, out_channels: int, groups: int) -> None:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"[{op}] Expected groups to be a positive int but got {groups!r}.")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"[{op}] Expected groups to divide in_channels and out_channels but got groups={groups}, "
            f"in_channels={in_channels}, out_channels={out_channels}."
        )


class Conv3d(mlx.nn.Module):
    """3-D convolution over NDHWC input, as mlx.nn.Conv3d, computed by
    volconv (differentiable). ``activation`` ("relu", "silu", "gelu_tanh")
    is fused with the bias into the kernel; ``padding_mode`` is "zeros",
    "reflect", "replicate" or "circular"."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        dilation: _Size = 1,
        bias: bool = True,
        *,
        groups: int = 1,
        padding_mode: str = "zeros",
        activation: str | None = None,
    ):
        super().__init__()
        _check_groups("Conv3d", in_channels, out_channels, groups)
        check_activation(activation, "Conv3d")
        check_padding_mode(padding_mode, "Conv3d")
        kernel_size = _triple(kernel_size)
        # mlx.nn's uniform init, with the fan-in of one group.
        scale = math.sqrt(1 / (in_channels // groups * math.prod(kernel_size)))
        self.weight = mx.random.uniform(
            low=-scale, high=scale, shape=(out_channels, *kernel_size, in_channels // groups)
        )
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride = _triple(stride)
        self.padding = _triple(padding) if isinstance(padding, int) else padding
        self.dilation = dilation
        self.groups = groups
        self.padding_mode = padding_mode
        self.activation = activation

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:4]}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, bias={'bias' in self}, groups={self.groups}, "
            f"padding_mode={self.padding_mode!r}, activation={self.activation!r}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        bias: Any = self["bias"] if "bias" in self else None
        return conv3d(
            x,
            self.weight,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            bias=bias,
            activation=self.activation,
            padding_mode=self.padding_mode,
        )


class ConvTranspose3d(mlx.nn.Module):
    """Transposed 3-D convolution over NDHWC input, as
    mlx.nn.ConvTranspose3d, computed by volconv (differentiable, any groups).
    The bias and ``activation`` follow with MLX ops; ``padding_mode`` is
    "zeros" only (as PyTorch's transposed convolutions)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _Size,
        stride: _Size = 1,
        padding: _Size = 0,
        dilation: _Size = 1,
        output_padding: _Size = 0,
        bias: bool = True,
        *,
        groups: int = 1,
        padding_mode: str = "zeros",
        activation: str | None = None,
    ):
        super().__init__()
        _check_groups("ConvTranspose3d", in_channels, out_channels, groups)
        check_activation(activation, "ConvTranspose3d")
        if padding_mode != "zeros":
            raise ValueError(
                f"[ConvTranspose3d] Expected padding_mode to be 'zeros' (the only mode of a transposed "
                f"convolution) but got {padding_mode!r}."
            )
        kernel_size = _triple(kernel_size)
        scale = math.sqrt(1 / (in_channels // groups * math.prod(kernel_size)))
        self.weight = mx.random.uniform(
            low=-scale, high=scale, shape=(out_channels, *kernel_size, in_channels // groups)
        )
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride = _triple(stride)
        self.padding = _triple(padding) if isinstance(padding, int) else padding
        self.dilation = dilation
        self.output_padding = _triple(output_padding)
        self.groups = groups
        self.padding_mode = padding_mode
        self.activation = activation

    def _extra_repr(self) -> str:
        return (
            f"{self.weight.shape[-1] * self.groups}, {self.weight.shape[0]}, "
            f"kernel_size={self.weight.shape[1:4]}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, output_padding={self.output_padding}, bias={'bias' in self}, "
            f"groups={self.groups}, activation={self.activation!r}"
        )

    def __call__(self, x: mx.array) -> mx.array:
        bias: Any = self["bias"] if "bias" in self else None
        return conv_transpose3d(
            x,
            self.weight,
            self.stride,
            self.padding,
            self.dilation,
            self.output_padding,
            self.groups,
            bias=bias,
            activation=self.activation,
        )
