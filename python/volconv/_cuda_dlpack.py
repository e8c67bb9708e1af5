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
from ._arrays import _check_float, _module_of
from ._core import DType, Stream


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


def import_array(obj: Any, op: str, what: str, stream: Stream) -> tuple[DLPackArray, DType]:
    """`obj` exported by its producer ready on `stream` (dtype checked)."""
    handle = _core._gpu_stream_handle(stream)
    try:
        capsule = obj.__dlpack__(stream=handle)
    except TypeError:  # a producer from before the stream keyword: its data is ready on any stream
        capsule = obj.__dlpack__()
    holder, ptr, shape, strides, dtype_name = _core._dlpack_view(capsule, op, what)
    dtype = getattr(DType, dtype_name, None)
    if dtype is None:
        _check_float(dtype_name, op, what)
    return DLPackArray(holder, ptr, tuple(shape), tuple(strides), _module_of(obj)), dtype


def new_result(like: DLPackArray, device: int, shape: tuple[int, ...], dtype: DType) -> DLPackArray:
    """A C-contiguous result on GPU `device`, freed when its last holder lets go."""
    holder, ptr, strides = _core._dlpack_result(device, shape, dtype)
    return DLPackArray(holder, ptr, tuple(shape), tuple(strides), like.module)


def as_producer_kind(result: DLPackArray) -> Any:
    """The result as the producer's array (its module's from_dlpack; JAX's
    arrays come from jaxlib, their from_dlpack is jax.numpy's), else the
    DLPack array itself, which any framework's from_dlpack takes."""
    if result.module in ("jax", "jaxlib"):
        import jax.numpy as jnp

        return jnp.from_dlpack(result.holder)
    from_dlpack = getattr(sys.modules.get(result.module), "from_dlpack", None)
    return from_dlpack(result.holder) if callable(from_dlpack) else result.holder
