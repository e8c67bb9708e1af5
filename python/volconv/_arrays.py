"""Arrays in and out: any supported array becomes a strided NumPy view of its
memory (no copy) plus a dtype; the result goes back as the kind of array the
input was."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, NamedTuple

import numpy as np

from ._core import DType

_NUMPY_DTYPES = {
    np.dtype(np.float16): DType.float16,
    np.dtype(np.float32): DType.float32,
    np.dtype(np.float64): DType.float64,
}
_FLOAT_NAMES = "float16, bfloat16, float32 or float64"


class Operand(NamedTuple):
    storage: Any  # the caller's memory: a NumPy view (bfloat16 as uint16), or an mlx.array
    dtype: DType
    kind: str  # "numpy", "torch" or "mlx": what the result is returned as


def _module_of(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _check_float(dtype_name: str, op: str, what: str) -> None:
    raise ValueError(
        f"[{op}] Expected the {what} to have a floating-point dtype ({_FLOAT_NAMES}) but got {dtype_name}."
    )


def _from_numpy(a: np.ndarray, op: str, what: str, kind: str) -> Operand:
    # Native float16/32/64 first: one dict lookup (numpy's dtype.name is
    # Python code, a few microseconds of every small call).
    dtype = _NUMPY_DTYPES.get(a.dtype)
    if dtype is None:
        if a.dtype.name == "bfloat16":  # ml_dtypes.bfloat16
            return Operand(_addressable(a.view(np.uint16)), DType.bfloat16, kind)
        if a.dtype.kind == "f" and not a.dtype.isnative:
            # Big-endian (non-native) floats: the kernels read native order, so
            # the array is converted once.
            a = a.astype(a.dtype.newbyteorder("="))
        dtype = _NUMPY_DTYPES.get(a.dtype)
        if dtype is None:
            _check_float(str(a.dtype), op, what)
    return Operand(_addressable(a), dtype, kind)


def _addressable(a: np.ndarray) -> np.ndarray:
    """`a` itself when its strides are whole elements, as DLPack (and so the
    core) needs; otherwise (a field of a structured array, a view with an odd
    byte step) a packed copy, made once."""
    size = a.itemsize
    for s in a.strides:  # a loop, not any(<generator>): a microsecond less per operand
        if s % size:
            return np.ascontiguousarray(a)
    return a


_warned_torch_requires_grad = False


def _warn_torch_requires_grad(t: Any, op: str) -> None:
    """Once per process: a tensor that requires grad, in grad mode, is read
    as data here (the plain ops are not differentiable); volconv.torch is."""
    global _warned_torch_requires_grad
    import torch

    if _warned_torch_requires_grad or not t.requires_grad or not torch.is_grad_enabled():
        return
    if torch.is_inference_mode_enabled():
        return
    _warned_torch_requires_grad = True
    warnings.warn(
        f"[{op}] got a torch tensor that requires grad: volconv.{op} is not differentiable, so its result "
        "has no gradient (the tensor is read as data). For training use volconv.torch "
        "(volconv.torch.conv3d, volconv.torch.nn.Conv3d), which autograd differentiates.",
        UserWarning,
        stacklevel=_first_caller_outside_volconv(),
    )


def _first_caller_outside_volconv() -> int:
    """The warnings stacklevel of the first frame outside this package: the
    user's line, however deep inside volconv the warning was raised."""
    package = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)  # level 1: the frame that calls warnings.warn
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _from_torch(t: Any, op: str, what: str) -> Operand:
    import torch

    # Cheap properties first (is_cpu, not t.device.type: no device object is
    # made): this runs twice per call and used to cost more than a tiny
    # convolution.
    if not t.is_cpu:
        raise ValueError(f"[{op}] Expected the {what} to be a CPU tensor but got a tensor on {t.device}.")
    if t.layout is not torch.strided:
        raise ValueError(
            f"[{op}] Expected the {what} to be a dense (strided) tensor but got layout "
            f"{str(t.layout).replace('torch.', '')}; call .to_dense() first."
        )
    if t.requires_grad:
        _warn_torch_requires_grad(t, op)
        t = t.detach()  # numpy() refuses a tensor that requires grad
    # A negative-bit view (torch._neg_view, -x of a conjugate view) holds -x
    # lazily; numpy cannot see the bit, so the value is made real once.
    if t.is_neg():
        t = t.resolve_neg()
    dtype = torch_dtypes().get(t.dtype)
    if dtype is None:
        _check_float(str(t.dtype).replace("torch.", ""), op, what)
    if dtype == DType.bfloat16:  # numpy has no bfloat16: its bits as uint16
        return Operand(t.view(torch.int16).numpy().view(np.uint16), dtype, "torch")
    return Operand(t.numpy(), dtype, "torch")


_TORCH_DTYPES: dict = {}


def torch_dtypes() -> dict:
    """torch dtype -> DType for the floating dtypes volconv reads, made once
    (a dict per call cost a microsecond); CPU and CUDA operands share it."""
    if not _TORCH_DTYPES:
        import torch

        _TORCH_DTYPES.update(
            {
                torch.float16: DType.float16,
                torch.bfloat16: DType.bfloat16,
                torch.float32: DType.float32,
                torch.float64: DType.float64,
            }
        )
    return _TORCH_DTYPES


def _from_mlx(a: Any, op: str, what: str) -> Operand:
    import mlx.core as mx

    dtypes = {mx.float16: DType.float16, mx.bfloat16: DType.bfloat16, mx.float32: DType.float32}
    dtypes[mx.float64] = DType.float64
    if a.dtype not in dtypes:
        _check_float(str(a.dtype).replace("mlx.core.", ""), op, what)
    # The array itself goes to the core, which reads it through DLPack: host
    # memory on the CPU, or the MTLBuffer (and offset) of an array on the GPU,
    # both without a copy.
    return Operand(a, dtypes[a.dtype], "mlx")


def as_operand(obj: Any, op: str, what: str) -> Operand:
    """Views `obj` without copying; raises TypeError for non-arrays and
    ValueError for non-floating dtypes."""
    if isinstance(obj, np.ndarray):
        return _from_numpy(obj, op, what, "numpy")
    module = _module_of(obj)
    if module == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        return _from_torch(obj, op, what)
    if module == "mlx" and type(obj).__name__ == "array":
        return _from_mlx(obj, op, what)
    if hasattr(obj, "__dlpack__"):
        return _from_numpy(np.from_dlpack(obj), op, what, "numpy")
    if not isinstance(obj, (str, bytes)):
        try:
            view = memoryview(obj)
        except TypeError:
            pass
        else:
            return _from_numpy(np.asarray(view), op, what, "numpy")
    raise TypeError(
        f"[{op}] Expected the {what} to be an array (numpy, mlx, torch, or an object with __dlpack__ "
        f"or the buffer protocol) but got {type(obj).__name__}."
    )


def to_kind(result: np.ndarray, dtype: DType, kind: str) -> Any:
    """Hands `result` (owned by the library; bfloat16 stored as uint16) to
    the caller as a `kind` array, without a copy where that library can
    adopt foreign memory (numpy, torch); MLX on the CPU copies once."""
    bf16 = dtype == DType.bfloat16
    if kind == "torch":
        import torch

        if bf16:
            return torch.from_numpy(result.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(result)
    if kind == "mlx":
        import mlx.core as mx

        if bf16:
            return mx.array(result).view(mx.bfloat16)
        # mx.array narrows float64 to float32 unless told the dtype.
        return mx.array(result, dtype=getattr(mx, result.dtype.name))
    if bf16:
        import ml_dtypes

        return result.view(ml_dtypes.bfloat16)
    return result
