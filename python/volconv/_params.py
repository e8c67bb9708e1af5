"""Parsing of conv3d's stride / padding / dilation / groups arguments into
the C++ ConvParams. Python rejects what C++ could not even receive (bools,
values outside 64 bits); everything else is validated in C++."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from ._core import ConvParams, PaddingMode

_INT64_MAX = 2**63 - 1


def _int(
    value: Any, op: str, name: str, lo: int = -_INT64_MAX, hi: int = _INT64_MAX, least: int | None = None
) -> int:
    """`value` as an int in [lo, hi]. Values inside that range are validated
    in C++; `least` (the smallest valid value, when known) only words the
    message for one outside it, e.g. padding=-2**63 is "negative"."""
    if type(value) is int and lo <= value <= hi:  # the common case (bool is not int here)
        return value
    if isinstance(value, bool):
        raise TypeError(f"[{op}] Expected {name} to be an int but got bool.")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"[{op}] Expected {name} to be an int but got {type(value).__name__}.") from None
    if v < lo and least is not None:
        raise ValueError(f"[{op}] Expected {name} to be at least {least} but got {v}.")
    if not lo <= v <= hi:
        raise ValueError(f"[{op}] Expected {name} to be between {lo} and {hi} but got {v}.")
    return v


def triple(value: Any, op: str, name: str, least: int) -> tuple[int, int, int]:
    """An int for all three spatial dims, or a 3-sequence (D, H, W)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(
                f"[{op}] Expected {name} to be an int or a tuple of 3 ints (D, H, W) but got "
                f"{tuple(value)!r} of length {len(value)}."
            )
        a, b, c = value
        return (
            _int(a, op, name, least=least),
            _int(b, op, name, least=least),
            _int(c, op, name, least=least),
        )
    v = _int(value, op, name, least=least)
    return (v, v, v)


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def padding_modes(value: Any, op: str) -> tuple[Any, Any, Any]:
    """One mode name for every axis, or a 3-sequence (D, H, W) of them."""

    def one(v: Any) -> Any:
        if not isinstance(v, str):
            raise TypeError(f"[{op}] Expected padding_mode to be a string but got {type(v).__name__}.")
        if v not in _PADDING_MODES:
            raise ValueError(
                f"[{op}] Expected padding_mode to be 'zeros', 'reflect', 'replicate' or 'circular' "
                f"(or a tuple of 3 of them, per axis D, H, W) but got {v!r}."
            )
        return getattr(PaddingMode, v)

    if isinstance(value, (tuple, list)):
        if len(value) != 3:
            raise ValueError(
                f"[{op}] Expected padding_mode to be a string or a tuple of 3 strings (D, H, W) but got "
                f"{tuple(value)!r} of length {len(value)}."
            )
        return (one(value[0]), one(value[1]), one(value[2]))
    m = one(value)
    return (m, m, m)


def one_or_three(v: Sequence[int]) -> int | tuple[int, int, int]:
    """A triple as its one value where all three agree."""
    a, b, c = v
    return a if a == b == c else (a, b, c)


def compact_geometry(
    stride: Sequence[int], lo: Sequence[int], hi: Sequence[int], dilation: Sequence[int]
) -> tuple:
    """(stride, padding, dilation) as the volconv API takes them, each an int
    where its three values agree: conv_params' cached fast path for plain
    ints (nested tuples cost about 5 us more a call, on a GPU call's
    critical path)."""
    padding = one_or_three(lo) if tuple(lo) == tuple(hi) else (tuple(lo), tuple(hi))
    return one_or_three(stride), padding, one_or_three(dilation)


# conv_params results by their arguments, when those are plain ints and
# strings (a bool, a float or a numpy integer may compare equal to an int but
# be refused or read differently, so they are never looked up): a call with
# the same arguments again costs a dictionary lookup (about a microsecond
# against ten for building the params, on a GPU call's critical path).
_PARAMS_CACHE: dict[tuple[Any, ...], ConvParams] = {}
_PARAMS_CACHE_SIZE = 256


def _plain(v: Any) -> bool:
    t = type(v)
    if t is tuple:
        for e in v:  # ints and strings inline: a call each was most of the cost
            te = type(e)
            if te is not int and te is not str and (te is not tuple or not _plain(e)):
                return False
        return True
    return t is int or t is str


def conv_params(
    padding: Any,
    stride: Any,
    dilation: Any,
    groups: Any,
    kernel: Sequence[int],
    op: str = "conv3d",
    padding_mode: Any = "zeros",
) -> ConvParams:
    """The ConvParams of these arguments. The result may be shared with other
    calls that passed the same arguments: never modify it."""
    key = (padding, stride, dilation, groups, tuple(kernel), op, padding_mode)
    # Scalar int arguments (the usual call) are plain at a glance; `kernel`
    # comes from an array's shape and `op` from volconv, so only the
    # caller's values are checked.
    scalars = type(stride) is int and type(dilation) is int and type(groups) is int
    if not (scalars and type(padding) is int and type(padding_mode) is str) and not _plain(key):
        return _build_conv_params(padding, stride, dilation, groups, kernel, op, padding_mode)
    p = _PARAMS_CACHE.get(key)
    if p is None:
        p = _build_conv_params(padding, stride, dilation, groups, kernel, op, padding_mode)
        if len(_PARAMS_CACHE) >= _PARAMS_CACHE_SIZE:
            _PARAMS_CACHE.clear()
        _PARAMS_CACHE[key] = p
    return p


def _build_conv_params(
    padding: Any, stride: Any, dilation: Any, groups: Any, kernel: Sequence[int], op: str, padding_mode: Any
) -> ConvParams:
    p = ConvParams()
    p.padding_mode = padding_modes(padding_mode, op)
    p.stride = triple(stride, op, "stride", 1)
    p.dilation = triple(dilation, op, "dilation", 1)
    p.groups = _int(groups, op, "groups", least=1)
    if isinstance(padding, str):
        if padding == "valid":
            return p
        if padding == "same":
            from . import _core

            return _core.set_same_padding(p, tuple(kernel))
        raise ValueError(
            f"[{op}] Expected padding to be 'valid' or 'same' when a string but got {padding!r}."
        )
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(side, (tuple, list)) for side in padding)
    ):
        p.padding_lo = triple(padding[0], op, "padding low", 0)
        p.padding_hi = triple(padding[1], op, "padding high", 0)
        return p
    pad = triple(padding, op, "padding", 0)
    p.padding_lo = pad
    p.padding_hi = pad
    return p
