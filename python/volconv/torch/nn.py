"""volconv.torch.nn.Conv3d and ConvTranspose3d: torch.nn's layers (same
signatures, parameters and state_dict keys, so weights load unchanged both
ways), computed by volconv.torch's ops."""

from typing import Optional

import torch
from torch import Tensor

from volconv.torch.functional import _ACTIVATIONS, conv3d, conv_transpose3d


class Conv3d(torch.nn.Conv3d):
    """torch.nn.Conv3d on volconv (every padding mode), plus a keyword-only
    fused ``activation`` ("relu", "silu" or "gelu_tanh") applied after the
    bias."""

    def __init__(self, *args, activation: Optional[str] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if activation is not None and activation not in _ACTIVATIONS:
            raise ValueError(
                "[volconv.torch.nn.Conv3d] Expected activation to be None, 'relu', 'silu' or 'gelu_tanh' "
                f"but got {activation!r}."
            )
        self.activation = activation

    def forward(self, input: Tensor) -> Tensor:
        return conv3d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            activation=self.activation,
            padding_mode=self.padding_mode,
        )

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.activation is None else f"{s}, activation={self.activation!r}"


class ConvTranspose3d(torch.nn.ConvTranspose3d):
    """torch.nn.ConvTranspose3d on volconv (padding_mode "zeros" only, as torch)."""

    def forward(self, input: Tensor, output_size: Optional["list[int]"] = None) -> Tensor:
        output_padding = self._output_padding(
            input, output_size, self.stride, self.padding, self.kernel_size, 3, self.dilation
        )
        return conv_transpose3d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


__all__ = ["Conv3d", "ConvTranspose3d"]
