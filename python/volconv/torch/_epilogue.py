"""The epilogue where the kernels have none (volconv's CUDA kernels, torch's
cuDNN calls): torch's own ops on the conv's fresh result (in place where
torch has the op), in the result's dtype, as a torch.nn model computes it.
The CPU kernels fuse the same epilogue into each output tile."""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor

_ACTIVATIONS_IN_PLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": lambda y: y.relu_(),
    "silu": lambda y: F.silu(y, inplace=True),
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
}


def activate_and_add(y: Tensor, activation: str | None, residual: Tensor | None) -> Tensor:
    """The epilogue's activation, then the residual, on a fresh conv result."""
    if activation is not None:
        y = _ACTIVATIONS_IN_PLACE[activation](y)
    if residual is not None:
        y += residual
    return y


def epilogue(y: Tensor, bias: Tensor | None, activation: str | None, residual: Tensor | None) -> Tensor:
    """Bias, activation, residual on a fresh NCDHW conv result."""
    if bias is not None:
        y += bias.view(-1, 1, 1, 1)  # over dim 1 of (N, C, D, H, W)
    return activate_and_add(y, activation, residual)
