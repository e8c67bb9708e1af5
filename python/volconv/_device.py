"""Devices and streams, after MLX: which device a call runs on, and in which
queue. The registry itself is in C++ (csrc/core/device.cpp); this module adds
the per-thread `stream()` context and accepts MLX's own objects."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import _core
from ._core import Device, DeviceType, Stream

if TYPE_CHECKING:
    from ._typing import DeviceLike, StreamLike

cpu = DeviceType.cpu
gpu = DeviceType.gpu

_local = threading.local()


def _stack() -> list:
    if not hasattr(_local, "streams"):
        _local.streams = []
    return _local.streams


def _as_device(d: DeviceLike, op: str) -> Device:
    if isinstance(d, Device):
        return d
    if isinstance(d, DeviceType):
        return Device(d)
    mapped = _from_mlx(d)
    if isinstance(mapped, Device) and type(d).__name__ != "Stream":
        return mapped
    raise TypeError(
        f"[{op}] Expected a volconv.Device or volconv.DeviceType (or MLX's mx.cpu / mx.gpu / mx.Device) "
        f"but got {type(d).__name__}."
    )


def _from_mlx(obj: object) -> Stream | Device | None:
    """MLX's DeviceType, Device and Stream, mapped to ours by device type."""
    cls = type(obj)
    if not cls.__module__.startswith("mlx"):
        return None
    kind = {"DeviceType": obj, "Device": getattr(obj, "type", None)}.get(cls.__name__)
    if cls.__name__ == "Stream":
        kind = getattr(getattr(obj, "device", None), "type", None)
    name = getattr(kind, "name", None)
    if name not in ("cpu", "gpu"):
        return None
    return Device(DeviceType.cpu if name == "cpu" else DeviceType.gpu)


def default_device() -> Device:
    """The device used when no stream or device is given."""
    return _core.default_device()


def set_default_device(device: DeviceLike) -> None:
    """Makes `device` the process-wide default (raises if it is not available)."""
    _core.set_default_device(_as_device(device, "set_default_device"))


def is_available(device: DeviceLike) -> bool:
    """True when conv3d can run on `device` here."""
    return _core.is_available(_as_device(device, "is_available"))


def unavailable_reason(device: DeviceLike) -> str:
    """Why `device` is not available here ("" when it is)."""
    return _core.unavailable_reason(_as_device(device, "unavailable_reason"))


def default_stream(device: DeviceLike) -> Stream:
    """The default stream of `device`."""
    return _core.default_stream(_as_device(device, "default_stream"))


def new_stream(device: DeviceLike) -> Stream:
    """A new stream on `device`."""
    return _core.new_stream(_as_device(device, "new_stream"))


def resolve_stream(s: StreamLike, op: str = "conv3d") -> Stream:
    """The stream a call runs on: `s` as given (a Stream, a Device, a
    DeviceType, or MLX's equivalents), or the innermost `stream()` context
    of this thread, or the default device's default stream."""
    if s is None:
        stack = _stack()
        return stack[-1] if stack else _core.default_stream(_core.default_device())
    if isinstance(s, Stream):
        return s
    if isinstance(s, (Device, DeviceType)):
        return _core.default_stream(_as_device(s, op))
    mapped = _from_mlx(s)
    if mapped is not None:
        return _core.default_stream(mapped)
    raise TypeError(
        f"[{op}] Expected stream to be None, a volconv.Stream, Device or DeviceType "
        f"(or MLX's mx.cpu / mx.gpu / mx.Device / mx.Stream) but got {type(s).__name__}."
    )


def call_stream(s: object, op: str = "conv3d") -> Stream | None:
    """The stream a call was given (`s`, or the innermost `stream()` context
    of this thread), or None when it was given none: the core then uses the
    default device, which may give way to the CPU if that device is a GPU
    that cannot run the kernels (a given GPU stream raises instead)."""
    if s is None and not _stack():
        return None
    return resolve_stream(s, op)


@contextlib.contextmanager
def stream(s: StreamLike) -> Iterator[Stream]:
    """Runs the calls inside the block (on this thread) on `s`."""
    resolved = resolve_stream(s, "stream")
    _stack().append(resolved)
    try:
        yield resolved
    finally:
        _stack().pop()


def synchronize(stream: StreamLike = None) -> None:
    """Waits for the work queued on `stream` (default: the current stream)."""
    _core.synchronize(resolve_stream(stream, "synchronize"))
