"""volconv for MLX users: conv3d, conv_transpose3d and conv_general that
take and return mlx arrays and are differentiable under mx.grad, mx.vjp,
mx.value_and_grad and nn.value_and_grad, and the layers in volconv.mlx.nn."""

from ._native import route
from ._ops import conv3d, conv_general, conv_transpose3d

__all__ = ["conv3d", "conv_general", "conv_transpose3d", "nn", "route"]


def __getattr__(name: str):
    # volconv.mlx.nn imports mlx.nn (slower); loaded on first use.
    if name == "nn":
        from . import nn

        return nn
    raise AttributeError(f"module 'volconv.mlx' has no attribute {name!r}")
