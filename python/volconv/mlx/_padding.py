"""padding_mode for volconv.mlx.conv3d: the names it takes. The modes
themselves ("reflect", "replicate", "circular") are read by the kernels
(volconv.conv3d's and its gradients' `padding_mode=`), with no padded copy."""

from __future__ import annotations

from typing import Any

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(mode: Any, op: str) -> str:
    if not isinstance(mode, str) or mode not in PADDING_MODES:
        raise ValueError(
            f"[{op}] Expected padding_mode to be 'zeros', 'reflect', 'replicate' or 'circular' but got "
            f"{mode!r}."
        )
    return mode
