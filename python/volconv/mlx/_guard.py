"""A warning where a gradient reaches a computation MLX cannot see inside (a
plain volconv op on mlx arrays; the gradient kernels inside volconv.mlx's
vjps, for a second-order gradient): that gradient would be zero. MLX does
not tell Python whether a transform is tracing, but an mx.custom_function's
vjp runs exactly when a gradient reaches it: that vjp warns."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import mlx.core as mx


@functools.cache
def _passthrough(message: str) -> Any:
    @mx.custom_function
    def passthrough(result: mx.array, *inputs: mx.array) -> mx.array:
        return result

    @passthrough.vjp
    def warn(primals: tuple[mx.array, ...], cotangent: mx.array, output: mx.array) -> tuple[mx.array, ...]:
        warnings.warn(message, UserWarning, stacklevel=2)
        return tuple(mx.zeros_like(a) for a in primals)

    return passthrough


PLAIN_OP = (
    "A gradient reached volconv.{op} called on mlx arrays: plain volconv ops are constants to MLX, so "
    "the gradient through them is zero. Use volconv.mlx.{op} (differentiable under mx.grad, mx.vjp, "
    "nn.value_and_grad)."
)
SECOND_ORDER = (
    "A second-order gradient reached volconv.mlx.{op}: its gradient is computed outside MLX's graph, so "
    "MLX sees it as a constant and this gradient is zero. volconv.mlx ops are differentiable once."
)


def guard(result: Any, *inputs: Any, message: str) -> Any:
    """`result` joined to the mlx arrays among `inputs` through a node that
    warns `message` when differentiated (no copy, no extra pass)."""
    arrays = [a for a in inputs if isinstance(a, mx.array)]
    return _passthrough(message)(result, *arrays) if arrays else result
