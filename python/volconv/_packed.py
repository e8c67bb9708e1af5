"""Weights packed once for many conv3d calls on the CPU (an inference loop
calling the same layer again and again): the caller owns the handle, which
holds a copy of the weights taken when packing and the kernels' packed
panels. Nothing is cached behind the caller's back: changing the original
array afterwards does not change the handle."""

from __future__ import annotations

from typing import Any

from . import _core
from ._arrays import as_operand
from ._params import conv_params

_DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")


class PackedConv3dWeights:
    """Weights packed by :func:`pack_conv3d_weights`; pass it to
    :func:`volconv.conv3d` as the weight (CPU only)."""

    __slots__ = ("_core",)

    def __init__(self, core: Any) -> None:
        self._core = core

    @property
    def shape(self) -> tuple[int, ...]:
        """The weight's shape ``(C_out, KD, KH, KW, C_in // groups)``."""
        return tuple(self._core.weight_shape)

    @property
    def dtype(self) -> str:
        """The weight's dtype name."""
        return self._core.weight_dtype.name

    @property
    def input_dtype(self) -> str:
        """The dtype name of the inputs it was packed for."""
        return self._core.input_dtype.name

    def __repr__(self) -> str:
        return (
            f"PackedConv3dWeights(shape={self.shape}, dtype={self.dtype}, input_dtype={self.input_dtype}, "
            f"isa={self._core.isa!r}, packed_bytes={self._core.packed_bytes})"
        )


def _dtype(value: Any) -> Any:
    name = str(value).rsplit(".", 1)[-1]  # "float32", np.float32, torch.float32, mlx.core.float32
    if name not in _DTYPE_NAMES:
        raise ValueError(
            f"[pack_conv3d_weights] Expected input_dtype to be one of {', '.join(_DTYPE_NAMES)} but got {value!r}."
        )
    return getattr(_core.DType, name)


def pack_conv3d_weights(
    weight: Any,
    /,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    padding_mode: Any = "zeros",
    input_dtype: Any = None,
) -> PackedConv3dWeights:
    """Packs ``weight`` ``(C_out, KD, KH, KW, C_in // groups)`` once for
    :func:`volconv.conv3d` calls with these keyword arguments on inputs of
    ``input_dtype`` (default: the weight's dtype). The input's N, D, H, W may
    vary between calls; a call with other arguments, another input dtype, or
    after the CPU's kernel set changed raises ValueError. Results are
    bit-identical to calls with the plain weight; bias, activation and
    residual are given per call."""
    w = as_operand(weight, "pack_conv3d_weights", "weight")
    if w.storage.ndim != 5:
        raise ValueError(
            "[pack_conv3d_weights] Expected the weight to have 5 dimensions (C_out, KD, KH, KW, C_in) but got "
            f"an array of shape {tuple(w.storage.shape)} with {w.storage.ndim} dimensions."
        )
    params = conv_params(
        padding,
        stride,
        dilation,
        groups,
        w.storage.shape[1:4],
        op="pack_conv3d_weights",
        padding_mode=padding_mode,
    )
    in_dtype = w.dtype if input_dtype is None else _dtype(input_dtype)
    return PackedConv3dWeights(_core.pack_conv3d_weights(w.storage, w.dtype, in_dtype, params))
