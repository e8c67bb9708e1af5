"""volconv.torch.conv3d and conv_transpose3d: torch.nn.functional's
signatures and semantics (NCDHW logical tensors, torch weight layouts),
computed by volconv in NDHWC, returned as channels_last_3d tensors."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from volconv._params import _int, triple
from volconv.torch import _eager
from volconv.torch._cudnn_torch import on_volconv_kernels
from volconv.torch._ops import _check_one_dtype_and_device, conv3d_op, conv_transpose3d_op
from volconv.torch._padding import PADDING_MODES, cuda_conv3d_padding, cuda_transpose_padding

_ACTIVATIONS = {"relu": F.relu, "silu": F.silu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


def _check_tensor(op: str, what: str, t, dims: "tuple[int, ...]") -> None:
    if not isinstance(t, Tensor):
        raise TypeError(
            f"[volconv.torch.{op}] Expected the {what} to be a torch.Tensor but got {type(t).__name__}."
        )
    if t.dim() not in dims:
        want = " or ".join(str(d) for d in dims)
        raise ValueError(
            f"[volconv.torch.{op}] Expected the {what} to have {want} dimensions but got shape {tuple(t.shape)}."
        )


def _padding(op: str, padding, kernel, stride, dilation):
    """(lo, hi) triples from an int, a triple, ((lo...), (hi...)), or for
    conv3d "valid" / "same" (torch's: total dilation*(k-1), the smaller half low)."""
    if isinstance(padding, str):
        if op == "conv3d" and padding == "valid":
            return (0, 0, 0), (0, 0, 0)
        if op == "conv3d" and padding == "same":
            if stride != (1, 1, 1):
                raise ValueError(
                    f"[volconv.torch.{op}] padding='same' is not supported for strided convolutions "
                    f"(got stride={stride})."
                )
            total = [dilation[i] * (kernel[i] - 1) for i in range(3)]
            lo = tuple(t // 2 for t in total)
            return lo, tuple(t - p for t, p in zip(total, lo))
        allowed = (
            "an int, a tuple of 3 ints, 'valid' or 'same'"
            if op == "conv3d"
            else "an int or a tuple of 3 ints"
        )
        raise ValueError(f"[volconv.torch.{op}] Expected padding to be {allowed} but got {padding!r}.")
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(s, (tuple, list)) for s in padding)
    ):
        return triple(padding[0], f"volconv.torch.{op}", "padding low", 0), triple(
            padding[1], f"volconv.torch.{op}", "padding high", 0
        )
    pad = triple(padding, f"volconv.torch.{op}", "padding", 0)
    return pad, pad


def _check_channels(
    op: str, input: Tensor, weight: Tensor, groups: int, c_in_of_weight: int, c_out: int
) -> None:
    """Channel counts in torch's terms (the kernels' own messages speak NDHWC)."""
    c_in = input.shape[-4]
    if c_in != c_in_of_weight or c_in % groups or c_out % groups:
        layout = "(C_out, C_in / groups, k...)" if op == "conv3d" else "(C_in, C_out / groups, k...)"
        raise ValueError(
            f"[volconv.torch.{op}] Expected the input's channels (dim 1, {c_in}) to match the weight {layout} "
            f"of shape {tuple(weight.shape)} with groups={groups} dividing C_in and C_out, but they do not."
        )


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv3d(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    *,
    activation: Optional[str] = None,
    residual: Optional[Tensor] = None,
    padding_mode: str = "zeros",
) -> Tensor:
    """torch.nn.functional.conv3d on volconv's kernels.

    input ``(N, C_in, D, H, W)`` or unbatched ``(C_in, D, H, W)``; weight
    ``(C_out, C_in / groups, KD, KH, KW)``; padding an int, a triple, "valid",
    "same", or asymmetric ``((lo_d, lo_h, lo_w), (hi_d, hi_h, hi_w))``.
    Keyword-only extras: ``activation`` ("relu", "silu", "gelu_tanh": GELU's
    tanh form), ``residual`` (the output's shape, added last), both fused
    into the kernel when no gradient is needed; ``padding_mode`` ("zeros",
    "reflect", "replicate", "circular"). The result is channels_last_3d.
    """
    op = "conv3d"
    _check_tensor(op, "input", input, (4, 5))
    _check_tensor(op, "weight", weight, (5,))
    if bias is not None:
        _check_tensor(op, "bias", bias, (1,))
    if residual is not None:
        _check_tensor(op, "residual", residual, (input.dim(),))
    if activation is not None and activation not in _ACTIVATIONS:
        raise ValueError(
            f"[volconv.torch.{op}] Expected activation to be None, 'relu', 'silu' or 'gelu_tanh' but got {activation!r}."
        )
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"[volconv.torch.{op}] Expected padding_mode to be one of {PADDING_MODES} but got {padding_mode!r}."
        )
    name = f"volconv.torch.{op}"
    groups = _int(groups, name, "groups", least=1)
    _check_channels(op, input, weight, groups, weight.shape[1] * groups, weight.shape[0])
    stride_ = triple(stride, name, "stride", 1)
    dilation_ = triple(dilation, name, "dilation", 1)
    lo, hi = _padding(op, padding, tuple(weight.shape[2:]), stride_, dilation_)
    unbatched = input.dim() == 4
    if unbatched:
        input = input.unsqueeze(0)
        residual = None if residual is None else residual.unsqueeze(0)
    if input.device.type == "cuda":
        _check_one_dtype_and_device(op, input, weight, bias, residual)  # before torch's calls, as in the ops
        input, lo, hi, padding_mode = cuda_conv3d_padding(
            input, weight, lo, hi, stride_, dilation_, groups, padding_mode
        )
        if not on_volconv_kernels(groups, input.shape[1], weight.shape[0], input.dtype):
            # torch's own conv and autograd: the ops' torch route (_cudnn_torch.py)
            # would run the same kernels with copies around its separate gradients.
            y = F.conv3d(input, weight, bias, stride_, lo, dilation_, groups)
            y = y if activation is None else _ACTIVATIONS[activation](y)
            y = y if residual is None else y + residual
            return y.squeeze(0) if unbatched else y
    # A permuted NCDHW-contiguous input is read 3x slower than one copy costs.
    x = input.contiguous(memory_format=torch.channels_last_3d)
    if residual is not None:
        residual = residual.contiguous(memory_format=torch.channels_last_3d)
    args = (list(stride_), list(lo), list(hi), list(dilation_), groups)
    conv = _eager.Conv3d.apply if _eager.eager(x, weight, bias, residual) else conv3d_op
    if activation is not None and _needs_grad(input, weight, bias, residual):
        # Training: the activation's derivative needs its input. Saving the
        # pre-activation (as torch's own activation does) costs one output's
        # memory; recomputing it in backward would cost a whole convolution.
        y = _ACTIVATIONS[activation](conv(x, weight, bias, None, *args, None, padding_mode))
        if residual is not None:
            y = y + residual
    else:
        y = conv(x, weight, bias, residual, *args, activation, padding_mode)
    return y.squeeze(0) if unbatched else y


def conv_transpose3d(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride=1,
    padding=0,
    output_padding=0,
    groups: int = 1,
    dilation=1,
) -> Tensor:
    """torch.nn.functional.conv_transpose3d on volconv's kernels.

    input ``(N, C_in, D, H, W)`` or unbatched; weight ``(C_in, C_out / groups,
    KD, KH, KW)``; padding an int, a triple, or asymmetric ``((lo...), (hi...))``.
    The result is channels_last_3d."""
    op = "conv_transpose3d"
    _check_tensor(op, "input", input, (4, 5))
    _check_tensor(op, "weight", weight, (5,))
    if bias is not None:
        _check_tensor(op, "bias", bias, (1,))
    name = f"volconv.torch.{op}"
    groups = _int(groups, name, "groups", least=1)
    _check_channels(op, input, weight, groups, weight.shape[0], weight.shape[1] * groups)
    stride_ = triple(stride, name, "stride", 1)
    dilation_ = triple(dilation, name, "dilation", 1)
    output_padding_ = triple(output_padding, name, "output_padding", 0)
    lo, hi = _padding(op, padding, tuple(weight.shape[2:]), stride_, dilation_)
    unbatched = input.dim() == 4
    if unbatched:
        input = input.unsqueeze(0)
    x = input.contiguous(memory_format=torch.channels_last_3d)
    crop = None
    if x.device.type == "cuda":
        _check_one_dtype_and_device(op, x, weight, bias)
        lo, hi, crop = cuda_transpose_padding(weight, lo, hi, groups)
        if not on_volconv_kernels(groups, weight.shape[0], weight.shape[1] * groups, weight.dtype):
            y = F.conv_transpose3d(x, weight, bias, stride_, lo, output_padding_, groups, dilation_)
            y = y if crop is None else crop(y)
            return y.squeeze(0) if unbatched else y
    conv = _eager.ConvTranspose3d.apply if _eager.eager(x, weight, bias) else conv_transpose3d_op
    y = conv(
        x,
        weight,
        bias,
        list(stride_),
        list(lo),
        list(hi),
        list(output_padding_),
        list(dilation_),
        groups,
    )
    if crop is not None:
        y = crop(y)
    return y.squeeze(0) if unbatched else y
