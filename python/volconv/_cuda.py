"""Arrays in CUDA memory (torch CUDA tensors, CuPy arrays, and other DLPack
producers such as JAX: _cuda_dlpack.py): read and written in place by the
CUDA backend, ordered on the array's own current stream
(torch.cuda.current_stream, CuPy's current stream; other producers make
their data ready on the call's stream through DLPack's stream handshake)
unless a volconv GPU stream is given, and returned as a new array of the
input's kind on its device. Depthwise problems run on volconv's kernels;
the others (conv3d, conv_transpose3d, conv_general and their gradients) on
cuDNN, opened at run time from the directories cudnn_search_dirs() names
(the nvidia-cudnn wheel torch uses) or the system loader."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from . import _core, _cuda_dlpack
from ._arrays import torch_dtypes
from ._core import Device, DeviceType, DType, Stream
from ._device import call_stream

_DLPACK_CUDA = 2  # kDLCUDA


def cudnn_search_dirs() -> list[str]:
    """The directories that may hold libcudnn.so.9, as torch finds it: the
    nvidia-cudnn wheel's lib/ (nvidia.cudnn's package directory), then
    nvidia/cudnn/lib under each sys.path entry. Only existing ones."""
    found: list[str] = []
    try:
        spec = importlib.util.find_spec("nvidia.cudnn")
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or ()) if spec is not None else []
    roots += [os.path.join(p, "nvidia", "cudnn") for p in sys.path if p]
    for root in roots:
        lib = os.path.join(root, "lib")
        if lib not in found and os.path.isdir(lib):
            found.append(lib)
    return found


# Set once at import: only strings are stored; cuDNN is opened at the first
# call that needs it (never for depthwise problems).
_core._cudnn_set_search(cudnn_search_dirs(), True)


class CudaOperand(NamedTuple):
    array: Any  # the caller's tensor (torch) or array (cupy), read in place
    dtype: DType
    kind: str  # "torch", "cupy" or "dlpack" (any other producer: _cuda_dlpack.py)
    device: int  # CUDA device index
    stream: int  # the producer's current stream (a cudaStream_t as int; 0 where not asked for)

    @property
    def storage(self) -> Any:
        """The array, under Operand's name: the params builders read shapes through it."""
        return self.array


def _module_of(obj: Any) -> str:
    module = type(obj).__module__
    return module if module == "torch" else module.split(".")[0]  # torch.Tensor's is "torch"


def is_cuda_array(obj: Any) -> bool:
    """True for a torch CUDA tensor or any DLPack array in CUDA memory."""
    if type(obj) is np.ndarray:  # the common case, first: every call asks twice
        return False
    if _module_of(obj) == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        return obj.is_cuda  # no device object made
    device = getattr(obj, "__dlpack_device__", None)
    if device is None or _module_of(obj) == "numpy":
        return False
    try:
        return int(device()[0]) == _DLPACK_CUDA
    except Exception:
        return False


def _torch_current_stream(torch: Any, index: int) -> int:
    """torch's current stream on device `index` as a cudaStream_t (int): the
    raw getter where torch has it (a fraction of a microsecond, against
    about 5 for torch.cuda.current_stream)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream


# (device, cudaStream_t) -> the volconv Stream that wraps it: the core's
# registry never forgets a wrapped stream, so the answer never changes; kept
# here it costs a dict lookup instead of a locked search in C++.
_EXTERNAL_STREAMS: dict[tuple[int, int], Stream] = {}


def _external_stream(device: int, handle: int) -> Stream:
    s = _EXTERNAL_STREAMS.get((device, handle))
    if s is None:
        if len(_EXTERNAL_STREAMS) >= 256:
            _EXTERNAL_STREAMS.clear()
        s = _EXTERNAL_STREAMS[(device, handle)] = _core._gpu_external_stream(device, handle)
    return s


def _gpu_index(obj: Any, module: str) -> int:
    """The CUDA device of an array is_cuda_array accepts (`module`: _module_of(obj))."""
    if module == "torch":
        return obj.get_device()  # an int: no device object made
    if module == "cupy":
        return obj.device.id
    return int(obj.__dlpack_device__()[1])


def _operand(obj: Any, op: str, what: str, call: Stream | None, with_stream: bool = True) -> CudaOperand:
    """The operand as the core reads it; its current stream only when
    with_stream (the call is ordered on the first operand's stream). Other
    DLPack producers export their arrays ready on the stream the call runs
    on: `call` where that is known already (a given stream, or the first
    operand's), else volconv's default stream of the array's GPU."""
    module = _module_of(obj)
    index = _gpu_index(obj, module)
    if module == "torch":
        t = obj  # read through data_ptr(): no detached view needed
        dtype = torch_dtypes().get(t.dtype)
        if dtype is None:
            raise ValueError(
                f"[{op}] Expected the {what} to have a floating-point dtype but got {str(t.dtype).replace('torch.', '')}."
            )
        stream = _torch_current_stream(sys.modules["torch"], index) if with_stream else 0
        return CudaOperand(t, dtype, "torch", index, stream)
    if module == "cupy":
        import cupy

        names = {"float16": DType.float16, "float32": DType.float32, "float64": DType.float64}
        if obj.dtype.name not in names:
            raise ValueError(
                f"[{op}] Expected the {what} to have a floating-point dtype but got {obj.dtype.name}."
            )
        stream = 0
        if with_stream:
            with obj.device:
                stream = cupy.cuda.get_current_stream().ptr
        return CudaOperand(obj, names[obj.dtype.name], "cupy", index, stream)
    _check_given_stream(call, index, op, what)
    consumer = call if call is not None else _core.default_stream(Device(DeviceType.gpu, index))
    array, dtype = _cuda_dlpack.import_array(obj, op, what, consumer)
    return CudaOperand(array, dtype, "dlpack", index, _core._gpu_stream_handle(consumer))


def _check_given_stream(given: Stream | None, device: int, op: str, what: str) -> None:
    if given is not None and (given.device.type != DeviceType.gpu or given.device.index != device):
        raise ValueError(
            f"[{op}] The {what} is on cuda:{device}, so the stream must be a GPU stream of device "
            f"{device}, but got {given!r}."
        )


def _raw(array: Any, kind: str) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(address of element 0, shape, strides in elements): what the core reads."""
    if kind == "torch":
        return array.data_ptr(), tuple(array.shape), tuple(array.stride())
    if kind == "dlpack":
        return array.ptr, array.shape, array.strides
    return array.data.ptr, tuple(array.shape), tuple(s // array.itemsize for s in array.strides)


def _empty_like_kind(a: CudaOperand, shape: tuple[int, ...], dtype: DType) -> Any:
    if a.kind == "torch":
        if dtype == a.dtype:  # same dtype and device: no torch.device object made
            return a.array.new_empty(shape)
        names = {v: k for k, v in torch_dtypes().items()}
        return a.array.new_empty(shape, dtype=names[dtype])
    if a.kind == "dlpack":
        return _cuda_dlpack.new_result(a.array, a.device, shape, dtype)
    import cupy

    with a.array.device:
        return cupy.empty(shape, dtype=dtype.name)


def run(
    op: str,
    core_op: Callable[..., None],
    first: tuple[str, Any],
    second: tuple[str, Any],
    result_shape: Callable[[CudaOperand, CudaOperand, Any], tuple[int, ...]],
    params: Callable[[CudaOperand, CudaOperand], Any],
    stream: Any,
) -> Any:
    """Runs core_op(a, a_dtype, b, b_dtype, result, result_dtype, params,
    stream) on the two operands, both in CUDA memory on one device, and
    returns the result (a new array of the first operand's kind).
    result_shape(a, b, params) gives its shape."""
    given: Stream | None = call_stream(stream, op)
    a = _operand(first[1], op, first[0], given) if is_cuda_array(first[1]) else None
    # The stream the call runs on, for a second operand that is asked for one.
    call = given if given is not None or a is None else _external_stream(a.device, a.stream)
    second_on_gpu = is_cuda_array(second[1])
    b_index = _gpu_index(second[1], _module_of(second[1])) if second_on_gpu else None
    if a is not None and b_index is not None and b_index != a.device:
        # Before b is imported: a DLPack producer would be asked for its data
        # on a stream of the other GPU.
        raise ValueError(
            f"[{op}] Expected the {first[0]} and the {second[0]} on one GPU but got cuda:{a.device} and "
            f"cuda:{b_index}."
        )
    b = _operand(second[1], op, second[0], call, with_stream=False) if second_on_gpu else None
    if a is None or b is None:
        cpu_what = first[0] if a is None else second[0]
        raise ValueError(
            f"[{op}] Expected the {first[0]} and the {second[0]} both in CUDA memory, but the {cpu_what} is not; "
            "move it to the same GPU first."
        )
    if a.array.ndim != 5 or b.array.ndim != 5:
        what, x = (first[0], a) if a.array.ndim != 5 else (second[0], b)
        raise ValueError(
            f"[{op}] Expected the {what} to have 5 dimensions but got an array of shape {tuple(x.array.shape)}."
        )
    p = params(a, b)
    shape = tuple(result_shape(a, b, p))
    producer = _external_stream(a.device, a.stream)
    _check_given_stream(given, a.device, op, first[0])
    s = producer if given is None else given
    out_dtype = a.dtype if a.dtype is b.dtype else _core.promote_types(a.dtype, b.dtype)
    out = _empty_like_kind(a, shape, out_dtype)
    # A given stream starts after the arrays' producer, which then waits for
    # it (a wait of a stream on itself does nothing).
    if given is not None:
        _core._gpu_stream_wait(s, producer)
    core_op(
        _raw(a.array, a.kind), a.dtype, _raw(b.array, b.kind), b.dtype, _raw(out, a.kind), out_dtype, p, s
    )
    if given is not None:
        _core._gpu_stream_wait(producer, s)
    if a.kind == "dlpack":  # no allocator of the producer's orders the result: wait (_cuda_dlpack.py)
        _core.synchronize(s)
        return _cuda_dlpack.as_producer_kind(out)
    return out
