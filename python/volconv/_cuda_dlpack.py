"""Arrays in CUDA memory from DLPack producers other than torch and CuPy
(JAX, say): imported through `__dlpack__` for one call, and the result
handed back through DLPack as the producer's own kind.

The producer is asked to make its data ready on the stream the call runs on
(DLPack's `stream=` handshake), so the call is ordered after the producer's
work. volconv has no allocator of such a producer's, so the result lives in
memory of its own, and the call waits for its stream before returning: the
result is complete when the producer imports it, and the inputs are no
longer read once the call has returned. (torch and CuPy calls do not wait:
their results come from their own allocators, ordered on their streams.)"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from . import _core
from ._core import Device, DeviceType, DType, Stream


class DLPackArray(NamedTuple):
    """An imported array or a result, as the CUDA route reads it."""

    holder: Any  # keeps the memory alive: the producer's export, or the result's own buffer
    ptr: int  # address of element 0
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # in elements
    module: str  # the producer's top-level module: the result goes back as its kind

    @property
    def ndim(self) -> int:
        return len(self.shape)


def default_stream(device: int) -> Stream:
    """volconv's default stream of GPU `device`: where a call whose first
    operand comes from such a producer runs, unless it is given a stream."""
    return _core.default_stream(Device(DeviceType.gpu, device))


def import_array(obj: Any, op: str, what: str, stream: Stream) -> tuple[DLPackArray, DType]:
    """`obj` exported by its producer ready on `stream` (dtype checked)."""
    handle = _core._gpu_stream_handle(stream)
    try:
        capsule = obj.__dlpack__(stream=handle)
    except TypeError:  # a producer from before the stream keyword: its data is ready on any stream
        capsule = obj.__dlpack__()
    holder, ptr, shape, strides, dtype, _ = _core._dlpack_view(capsule, op, what)
    if not dtype:
        raise ValueError(
            f"[{op}] Expected the {what} to have a floating-point dtype (float16, bfloat16, float32 or float64) "
            f"but its DLPack dtype is not one of them."
        )
    module = type(obj).__module__.split(".")[0]
    return DLPackArray(holder, ptr, tuple(shape), tuple(strides), module), getattr(DType, dtype)


def new_result(like: DLPackArray, device: int, shape: tuple[int, ...], dtype: DType) -> DLPackArray:
    """A C-contiguous result on GPU `device`, freed when its last holder lets go."""
    holder, ptr = _core._dlpack_result(device, list(shape), dtype)
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return DLPackArray(holder, ptr, tuple(shape), tuple(reversed(strides)), like.module)


def as_producer_kind(result: DLPackArray) -> Any:
    """The result as the producer's array (its module's from_dlpack; JAX's
    arrays come from jaxlib, their from_dlpack is jax.numpy's), else the
    DLPack array itself, which any framework's from_dlpack takes."""
    if result.module in ("jax", "jaxlib"):
        import jax.numpy as jnp

        return jnp.from_dlpack(result.holder)
    from_dlpack = getattr(sys.modules.get(result.module), "from_dlpack", None)
    return from_dlpack(result.holder) if callable(from_dlpack) else result.holder
