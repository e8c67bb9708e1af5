"""Non-zero padding modes ("reflect", "replicate", "circular") for
volconv.mlx.conv3d, done explicitly with MLX ops until volconv.conv3d's own
`padding_mode=` keyword is on main."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Flip to True once volconv.conv3d, conv3d_grad_input and conv3d_grad_weight
# take `padding_mode=` (another branch adds it): the kernels then read the
# border themselves and pad_explicitly is no longer called.
KERNEL_PADDING_MODES = False


def check_padding_mode(mode: Any, op: str) -> str:
    if not isinstance(mode, str) or mode not in PADDING_MODES:
        raise ValueError(
            f"[{op}] Expected padding_mode to be 'zeros', 'reflect', 'replicate' or 'circular' but got "
            f"{mode!r}."
        )
    return mode


def pad_explicitly(x: mx.array, lo: tuple[int, ...], hi: tuple[int, ...], mode: str, op: str) -> mx.array:
    """`x` (N, D, H, W, C) padded by (lo, hi) per spatial dim in `mode`, with
    PyTorch's rules: reflect needs a pad below the size, circular at most the
    size. Built from MLX ops, so MLX differentiates it (the border's gradient
    folds back onto the input)."""
    for axis, (a, b) in enumerate(zip(lo, hi), start=1):
        size = x.shape[axis]
        limit = size - 1 if mode == "reflect" else size
        if mode != "replicate" and max(a, b) > limit:
            raise ValueError(
                f"[{op}] Expected padding of at most {limit} for padding_mode={mode!r} (spatial dimension "
                f"{axis - 1} has size {size}) but got padding ({a}, {b})."
            )
        if a == 0 and b == 0:
            continue
        parts = []
        index = [slice(None)] * 5
        if mode == "replicate":
            x = mx.pad(x, [(0, 0)] * axis + [(a, b)] + [(0, 0)] * (4 - axis), mode="edge")
            continue
        if a:
            index[axis] = slice(a, 0, -1) if mode == "reflect" else slice(size - a, size)
            parts.append(x[tuple(index)])
        parts.append(x)
        if b:
            # A negative stop would wrap around: None runs to the start.
            stop = size - 2 - b
            index[axis] = (
                slice(size - 2, stop if stop >= 0 else None, -1) if mode == "reflect" else slice(0, b)
            )
            parts.append(x[tuple(index)])
        x = mx.concatenate(parts, axis=axis)
    return x
