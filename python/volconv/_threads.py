"""The CPU backend's thread count. Python checks what C++ could not even
receive (bools, values outside a C int), so the caller gets a message that
names the call rather than nanobind's argument-conversion error."""

from __future__ import annotations

from typing import SupportsIndex

from . import _core
from ._params import _int

_C_INT_MIN, _C_INT_MAX = -(2**31), 2**31 - 1


def set_num_threads(n: SupportsIndex) -> None:
    """Threads the CPU backend uses; n <= 0 restores the default (CPU
    affinity or VOLCONV_NUM_THREADS)."""
    _core.set_num_threads(_int(n, "set_num_threads", "n", _C_INT_MIN, _C_INT_MAX))


def get_num_threads() -> int:
    """Threads the CPU backend uses now."""
    return _core.get_num_threads()
