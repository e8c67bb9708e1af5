"""conv3d: argument handling around the compiled op."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from . import _core, _cuda
from ._arrays import as_operand, to_kind
from ._cuda import is_cuda_array
from ._device import call_stream
from ._packed import PackedConv3dWeights
from ._params import conv_params

if TYPE_CHECKING:
    from typing import SupportsIndex

    import numpy as np
    import torch

    from ._typing import Activation, ArrayLike, Int3, MLXArrayT, OtherArray, Padding, PaddingMode, StreamLike


# The result is of the input's kind: numpy in -> numpy out, torch -> torch, mlx -> mlx.
@overload
def conv3d(
    input: np.ndarray,
    weight: ArrayLike | PackedConv3dWeights,
    /,
    stride: Int3 = 1,
    padding: Padding = 0,
    dilation: Int3 = 1,
    groups: SupportsIndex = 1,
    *,
    stream: StreamLike = None,
    bias: ArrayLike | None = None,
    activation: Activation | None = None,
    residual: ArrayLike | None = None,
    padding_mode: PaddingMode = "zeros",
) -> np.ndarray: ...
@overload
def conv3d(
    input: torch.Tensor,
    weight: ArrayLike | PackedConv3dWeights,
    /,
    stride: Int3 = 1,
    padding: Padding = 0,
    dilation: Int3 = 1,
    groups: SupportsIndex = 1,
    *,
    stream: StreamLike = None,
    bias: ArrayLike | None = None,
    activation: Activation | None = None,
    residual: ArrayLike | None = None,
    padding_mode: PaddingMode = "zeros",
) -> torch.Tensor: ...
@overload
def conv3d(
    input: MLXArrayT,
    weight: ArrayLike | PackedConv3dWeights,
    /,
    stride: Int3 = 1,
    padding: Padding = 0,
    dilation: Int3 = 1,
    groups: SupportsIndex = 1,
    *,
    stream: StreamLike = None,
    bias: ArrayLike | None = None,
    activation: Activation | None = None,
    residual: ArrayLike | None = None,
    padding_mode: PaddingMode = "zeros",
) -> MLXArrayT: ...
@overload
def conv3d(
    input: OtherArray,
    weight: ArrayLike | PackedConv3dWeights,
    /,
    stride: Int3 = 1,
    padding: Padding = 0,
    dilation: Int3 = 1,
    groups: SupportsIndex = 1,
    *,
    stream: StreamLike = None,
    bias: ArrayLike | None = None,
    activation: Activation | None = None,
    residual: ArrayLike | None = None,
    padding_mode: PaddingMode = "zeros",
) -> np.ndarray: ...
def conv3d(
    input: Any,
    weight: Any,
    /,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    *,
    stream: Any = None,
    bias: Any = None,
    activation: Any = None,
    residual: Any = None,
    padding_mode: Any = "zeros",
) -> Any:
    """3-D convolution over channels-last volumes, with mlx.core.conv3d's
    semantics.

    Args:
      input: ``(N, D, H, W, C_in)`` array (numpy, mlx, torch, DLPack or buffer).
      weight: ``(C_out, KD, KH, KW, C_in // groups)`` array, or weights packed
        ahead by :func:`pack_conv3d_weights` (CPU only).
      stride: int or ``(sd, sh, sw)``.
      padding: int, ``(pd, ph, pw)``, ``((lo_d, lo_h, lo_w), (hi_d, hi_h, hi_w))``,
        ``"valid"`` or ``"same"`` (stride 1 only).
      dilation: int or ``(dd, dh, dw)``.
      groups: divides both C_in and C_out (``groups == C_in`` is depthwise).
      stream: None, a Stream, a Device, a DeviceType, or MLX's equivalents.
      bias: optional ``(C_out,)`` array of any float dtype, added to the result.
      activation: None, ``"relu"``, ``"silu"`` or ``"gelu_tanh"`` (GELU's tanh
        approximation), applied after the bias.
      residual: optional array of the output's shape and dtype (any strides),
        added last.
      padding_mode: what the padding holds: ``"zeros"`` (the default),
        ``"reflect"``, ``"replicate"`` or ``"circular"`` as in
        torch.nn.functional.pad, or a tuple of 3 of them (per axis D, H, W).
        Read in place from the input (no padded copy); reflect needs padding
        below the input size on its axis, circular at most that size. Read
        by the CPU and the Metal kernels alike.

    The bias, activation and residual are fused: applied in float32 (float64
    for a float64 result) to each output tile before it is rounded and
    stored, with no extra pass over the output, on the CPU and in every
    Metal kernel family (the Metal side is verified in the MSL emulator
    only; it has never run on a Mac).

    Returns:
      ``(N, Do, Ho, Wo, C_out)`` array of the input's kind, with the promoted
      dtype of input and weight.
    """
    if is_cuda_array(input) or is_cuda_array(weight):
        return _conv3d_cuda(
            input, weight, stride, padding, dilation, groups, stream, padding_mode, bias, activation, residual
        )
    x = as_operand(input, "conv3d", "input")
    packed = weight._core if isinstance(weight, PackedConv3dWeights) else None  # packed ahead (_packed.py)
    w = None if packed else as_operand(weight, "conv3d", "weight")
    for what, a, layout in (("input", x, "(N, D, H, W, C_in)"), ("weight", w, "(C_out, KD, KH, KW, C_in)")):
        if a is not None and a.storage.ndim != 5:
            raise ValueError(
                f"[conv3d] Expected the {what} to have 5 dimensions {layout} but got an array of shape "
                f"{tuple(a.storage.shape)} with {a.storage.ndim} dimensions."
            )
    w_shape = tuple(packed.weight_shape) if packed else tuple(w.storage.shape)
    w_dtype = packed.weight_dtype if packed else w.dtype
    params = conv_params(padding, stride, dilation, groups, w_shape[1:4], padding_mode=padding_mode)
    s = call_stream(stream)
    epilogue = _epilogue(bias, activation, residual)
    try:
        out = _core.conv3d(
            x.storage, x.dtype, None if packed else w.storage, w_dtype, params, s, **epilogue, packed=packed
        )
    except ValueError as e:
        hint = _channels_first_hint(tuple(x.storage.shape), w_shape, params.groups)
        if hint:
            raise ValueError(f"{e} {hint}") from None
        raise
    result = to_kind(out, _core.promote_types(x.dtype, w_dtype), x.kind)
    if x.kind == "mlx":
        # MLX cannot differentiate through this call: warn if a gradient reaches it.
        from .mlx._guard import PLAIN_OP, guard

        return guard(result, input, weight, bias, residual, message=PLAIN_OP.format(op="conv3d"))
    return result


def _conv3d_cuda(
    input, weight, stride, padding, dilation, groups, stream, padding_mode, bias, activation, residual
):
    """conv3d of arrays in CUDA memory (volconv/_cuda.py), without an epilogue for now."""
    if bias is not None or activation is not None or residual is not None:
        raise ValueError(
            "[conv3d] A fused epilogue (bias, activation, residual) is not supported on the gpu yet; apply it "
            "after the convolution."
        )

    def params(x, w):
        return conv_params(
            padding, stride, dilation, groups, tuple(w.array.shape[1:4]), padding_mode=padding_mode
        )

    return _cuda.run(
        "conv3d",
        _core._cuda_conv3d,
        ("input", input),
        ("weight", weight),
        lambda x, w, p: _core._conv3d_output_shape(tuple(x.array.shape), tuple(w.array.shape), p),
        params,
        stream,
    )


_ACTIVATIONS = {
    "relu": _core.Activation.relu,
    "silu": _core.Activation.silu,
    "gelu_tanh": _core.Activation.gelu_tanh,
}


def _epilogue(bias: Any, activation: Any, residual: Any) -> dict[str, Any]:
    """The fused epilogue's keyword arguments for _core.conv3d (shapes and
    dtypes are checked in C++)."""
    kw: dict[str, Any] = {}
    if bias is not None:
        b = as_operand(bias, "conv3d", "bias")
        kw.update(bias=b.storage, bias_dtype=b.dtype)
    if activation is not None:
        if not isinstance(activation, str):
            raise TypeError(
                f"[conv3d] Expected activation to be None or a string but got {type(activation).__name__}."
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"[conv3d] Expected activation to be None, 'relu', 'silu' or 'gelu_tanh' but got {activation!r}."
            )
        kw["activation"] = _ACTIVATIONS[activation]
    if residual is not None:
        r = as_operand(residual, "conv3d", "residual")
        kw.update(residual=r.storage, residual_dtype=r.dtype)
    return kw


def _channels_first_hint(x: tuple[int, ...], w: tuple[int, ...], groups: int) -> str:
    """A hint when the channels disagree as laid out here but would agree
    with the input (or the weight) read channels-first, as PyTorch lays them
    out; "" otherwise."""
    if x[4] == w[4] * groups:
        return ""
    # input (N, C, D, H, W) with our weight, or with PyTorch's (C_out, C_in/g, KD, KH, KW)
    if x[1] in (w[4] * groups, w[1] * groups) or x[4] == w[1] * groups:
        return (
            "The shapes look channels-first (N, C, D, H, W), as PyTorch's are: conv3d takes channels-last "
            "input (N, D, H, W, C_in) and weight (C_out, KD, KH, KW, C_in / groups); for torch tensors pass "
            "x.permute(0, 2, 3, 4, 1) and w.permute(0, 2, 3, 4, 1) (views, no copy), for numpy "
            "np.moveaxis(a, 1, -1)."
        )
    return ""
