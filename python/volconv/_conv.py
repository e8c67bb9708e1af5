"""conv3d: argument handling around the compiled op."""

from __future__ import annotations

from typing import Any

from . import _core
from ._arrays import as_operand, to_kind
from ._device import call_stream
from ._params import conv_params


def conv3d(
    input: Any,
    weight: Any,
    /,
    stride: int | tuple[int, int, int] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    *,
    stream: Any = None,
) -> Any:
    """3-D convolution over channels-last volumes, with mlx.core.conv3d's
    semantics.

    Args:
      input: ``(N, D, H, W, C_in)`` array (numpy, mlx, torch, DLPack or buffer).
      weight: ``(C_out, KD, KH, KW, C_in // groups)`` array.
      stride: int or ``(sd, sh, sw)``.
      padding: int, ``(pd, ph, pw)``, ``((lo_d, lo_h, lo_w), (hi_d, hi_h, hi_w))``,
        ``"valid"`` or ``"same"`` (stride 1 only).
      dilation: int or ``(dd, dh, dw)``.
      groups: divides both C_in and C_out (``groups == C_in`` is depthwise).
      stream: None, a Stream, a Device, a DeviceType, or MLX's equivalents.

    Returns:
      ``(N, Do, Ho, Wo, C_out)`` array of the input's kind, with the promoted
      dtype of input and weight.
    """
    x = as_operand(input, "conv3d", "input")
    w = as_operand(weight, "conv3d", "weight")
    for what, a, layout in (("input", x, "(N, D, H, W, C_in)"), ("weight", w, "(C_out, KD, KH, KW, C_in)")):
        if a.storage.ndim != 5:
            raise ValueError(
                f"[conv3d] Expected the {what} to have 5 dimensions {layout} but got an array of shape "
                f"{tuple(a.storage.shape)} with {a.storage.ndim} dimensions."
            )
    params = conv_params(padding, stride, dilation, groups, w.storage.shape[1:4])
    s = call_stream(stream)
    out = _core.conv3d(x.storage, x.dtype, w.storage, w.dtype, params, s)
    return to_kind(out, _core.promote_types(x.dtype, w.dtype), x.kind)
