"""The epilogue's activations for volconv.mlx: their derivatives (for
conv3d's vjp, whose forward is fused in the kernel) and the unfused
bias/activation/residual of conv_transpose3d and conv_general (MLX ops, so
MLX differentiates them)."""

from __future__ import annotations

import math
from typing import Any

import mlx.core as mx

from volconv import _core
from volconv._arrays import as_operand, to_kind

ACTIVATIONS = ("relu", "silu", "gelu_tanh")
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def check_activation(activation: Any, op: str) -> None:
    if activation is not None and (not isinstance(activation, str) or activation not in ACTIVATIONS):
        raise ValueError(
            f"[{op}] Expected activation to be None, 'relu', 'silu' or 'gelu_tanh' but got {activation!r}."
        )


def _compute_dtype(a: mx.array) -> Any:
    # float32 at least, as the kernel's epilogue computes; float64 stays.
    return mx.float64 if a.dtype == mx.float64 else mx.float32


def _sigmoid(z: mx.array) -> mx.array:
    # Through tanh: MLX's float64 sigmoid (and exp) are only float32-accurate.
    return 0.5 * (1.0 + mx.tanh(0.5 * z))


def activate(activation: str, z: mx.array) -> mx.array:
    if activation == "relu":
        return mx.maximum(z, mx.zeros_like(z))
    if activation == "silu":
        return z * _sigmoid(z)
    return 0.5 * z * (1.0 + mx.tanh(_GELU_C * (z + _GELU_A * z * z * z)))


def activation_grad(activation: str, z: mx.array, cotangent: mx.array) -> mx.array:
    """cotangent * activation'(z), in the cotangent's dtype: volconv's
    activation_backward (one threaded pass, PyTorch's formulas) rather than a
    chain of MLX's element-wise ops."""
    op = "activation_backward"
    pre, grad = as_operand(z, op, "pre"), as_operand(cotangent, op, "grad")
    act = getattr(_core.Activation, activation)
    return to_kind(
        _core._activation_backward(act, pre.storage, pre.dtype, grad.storage, grad.dtype), grad.dtype, "mlx"
    )


def apply_epilogue(y: mx.array, bias: Any, activation: str | None, residual: Any, op: str) -> mx.array:
    """activation(y + bias) + residual in the result's dtype, as conv3d's
    fused epilogue defines it (computed in float32 at least). Shapes are
    checked: MLX would broadcast a wrong one silently."""
    if bias is None and activation is None and residual is None:
        return y
    if bias is not None and tuple(bias.shape) != (y.shape[-1],):
        raise ValueError(
            f"[{op}] Expected the bias to have shape ({y.shape[-1]},) (C_out) but got {tuple(bias.shape)}."
        )
    if residual is not None and tuple(residual.shape) != tuple(y.shape):
        raise ValueError(
            f"[{op}] Expected the residual to have the output's shape {tuple(y.shape)} but got "
            f"{tuple(residual.shape)}."
        )
    z = y.astype(_compute_dtype(y))
    if bias is not None:
        z = z + bias.astype(z.dtype)
    if activation is not None:
        z = activate(activation, z)
    if residual is not None:
        z = z + residual.astype(z.dtype)
    return z.astype(y.dtype)
