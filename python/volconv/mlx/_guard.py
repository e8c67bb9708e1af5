"""A warning where a gradient flows through a plain volconv op on mlx
arrays: MLX cannot see inside it, so that gradient is zero. MLX does not
tell Python whether a transform is tracing, but an mx.custom_function's vjp
runs exactly when a gradient reaches it: that vjp warns."""

from __future__ import annotations

import warnings
from typing import Any

import mlx.core as mx


@mx.custom_function
def _passthrough(result: mx.array, *inputs: mx.array) -> mx.array:
    return result


@_passthrough.vjp
def _warn(primals: tuple[mx.array, ...], cotangent: mx.array, output: mx.array) -> tuple[mx.array, ...]:
    warnings.warn(
        "A gradient reached volconv.conv3d called on mlx arrays: plain volconv ops are constants "
        "to MLX, so the gradient through them is zero. Use volconv.mlx.conv3d (differentiable under "
        "mx.grad, mx.vjp, nn.value_and_grad).",
        UserWarning,
        stacklevel=2,
    )
    return tuple(mx.zeros_like(a) for a in primals)


def guard(result: Any, *inputs: Any) -> Any:
    """`result` joined to the mlx arrays among `inputs` through a node that
    warns when differentiated (no copy, no extra pass)."""
    arrays = [a for a in inputs if isinstance(a, mx.array)]
    return _passthrough(result, *arrays) if arrays else result
