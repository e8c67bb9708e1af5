"""Process-wide choices of the CPU backend's algorithms."""

from __future__ import annotations

from . import _core


def set_cpu_winograd(enabled: bool) -> None:
    """Whether float32 3x3x3 convolutions at stride and dilation 1 with 16 or
    more channels per group may run Winograd F(2x2x2, 3x3x3) on the CPU
    (default True). It is about twice as fast; its rounding is a different
    sum of the same products (README: "Winograd for 3x3x3 convolutions").
    False gives the direct paths' results."""
    if not isinstance(enabled, bool):
        raise TypeError(f"[set_cpu_winograd] Expected enabled to be a bool, got {type(enabled).__name__}.")
    _core.set_cpu_winograd(enabled)


def cpu_winograd_enabled() -> bool:
    """Whether the CPU may run Winograd (set_cpu_winograd)."""
    return _core.cpu_winograd_enabled()
