"""conv_general, conv_transpose3d and conv3d's gradients: argument handling
around the compiled ops (validation and all logic are in C++)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _core, _cuda
from ._arrays import Operand, as_operand, to_kind
from ._core import DeviceType
from ._cuda import is_cuda_array
from ._device import call_stream, resolve_stream
from ._params import _INT64_MAX, _int, conv_params, triple

_LAYOUTS = {
    "input": "(N, D, H, W, C_in)",
    "weight": "(C_out, KD, KH, KW, C_in)",
    "grad_output": "(N, Do, Ho, Wo, C_out)",
}


def _stream_for(stream, op: str):
    """The stream a training op runs on: a call given no stream (and no
    `stream()` context) runs on the CPU even where the default device is the
    GPU; a GPU stream given explicitly runs the Metal kernels (emulator-verified,
    unrun on a Mac)."""
    given = call_stream(stream, op)
    if given is None:
        default = resolve_stream(None, op)
        return default if default.device.type == DeviceType.cpu else resolve_stream(DeviceType.cpu, op)
    return given


def _operands(op: str, *named: tuple[str, Any]) -> list[Operand]:
    out = []
    for what, obj in named:
        a = as_operand(obj, op, what)
        if a.storage.ndim != 5:
            raise ValueError(
                f"[{op}] Expected the {what} to have 5 dimensions {_LAYOUTS[what]} but got an array of shape "
                f"{tuple(a.storage.shape)} with {a.storage.ndim} dimensions."
            )
        out.append(a)
    return out


def _shape5(value: Any, op: str, name: str) -> tuple[int, ...]:
    # The common case first (a tuple or torch.Size of ints that fit int64:
    # what _int would return unchanged), without a call per element: the
    # framework wrappers pass a shape on every backward call.
    if isinstance(value, tuple) and len(value) == 5:
        a, b, c, d, e = value
        if type(a) is int and type(b) is int and type(c) is int and type(d) is int and type(e) is int:
            if -_INT64_MAX <= min(value) and max(value) <= _INT64_MAX:
                return (a, b, c, d, e)
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)) or len(value) != 5:
        raise ValueError(
            f"[{op}] Expected {name} to be a sequence of 5 ints (N, D, H, W, C) but got {value!r}."
        )
    return tuple(_int(v, op, name) for v in value)


def _padding(padding: Any, op: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """An int, a triple, or a (lo, hi) pair of triples."""
    if (
        isinstance(padding, (tuple, list))
        and len(padding) == 2
        and all(isinstance(side, (tuple, list)) for side in padding)
    ):
        return triple(padding[0], op, "padding low", 0), triple(padding[1], op, "padding high", 0)
    if isinstance(padding, str):
        raise ValueError(
            f"[{op}] Expected padding to be an int, a tuple of 3 ints or a (low, high) pair of them "
            f"but got {padding!r}."
        )
    pad = triple(padding, op, "padding", 0)
    return pad, pad


def _transpose_params(op: str, stride: Any, padding: Any, dilation: Any, output_padding: Any, groups: Any):
    p = _core.ConvTransposeParams()
    p.stride = triple(stride, op, "stride", 1)
    p.padding_lo, p.padding_hi = _padding(padding, op)
    p.dilation = triple(dilation, op, "dilation", 1)
    p.output_padding = triple(output_padding, op, "output_padding", 0)
    p.groups = _int(groups, op, "groups")
    return p


def _general_params(op: str, stride, padding, kernel_dilation, input_dilation, groups, flip):
    if not isinstance(flip, bool):
        raise TypeError(f"[{op}] Expected flip to be a bool but got {type(flip).__name__}.")
    p = _core.ConvGeneralParams()
    p.stride = triple(stride, op, "stride", 1)
    p.padding_lo, p.padding_hi = _padding(padding, op)
    p.kernel_dilation = triple(kernel_dilation, op, "kernel_dilation", 1)
    p.input_dilation = triple(input_dilation, op, "input_dilation", 1)
    p.groups = _int(groups, op, "groups")
    p.flip = flip
    return p


def conv_transpose3d(
    input: Any,
    weight: Any,
    /,
    stride: int | tuple[int, int, int] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, int, int] = 1,
    output_padding: int | tuple[int, int, int] = 0,
    groups: int = 1,
    *,
    stream: Any = None,
) -> Any:
    """Transposed 3-D convolution, as mlx.core.conv_transpose3d (with PyTorch's
    rules for output_padding and large padding, and any groups).

    Args:
      input: ``(N, D, H, W, C_in)`` array.
      weight: ``(C_out, KD, KH, KW, C_in // groups)`` array.
      stride, dilation, output_padding: int or ``(d, h, w)``; output_padding
        below ``max(stride, dilation)``.
      padding: int, ``(pd, ph, pw)`` or ``((lo_d, lo_h, lo_w), (hi_d, hi_h, hi_w))``.
      groups: divides both C_in and C_out.

    Returns:
      ``(N, Do, Ho, Wo, C_out)`` of the input's kind, ``Do = (D - 1) * stride
      - pad_lo - pad_hi + dilation * (KD - 1) + output_padding + 1``.
    """
    op = "conv_transpose3d"
    if is_cuda_array(input) or is_cuda_array(weight):
        return _two_operands_cuda(
            op,
            _core._cuda_conv_transpose3d,
            _core._conv_transpose3d_output_shape,
            input,
            weight,
            lambda: _transpose_params(op, stride, padding, dilation, output_padding, groups),
            stream,
        )
    x, w = _operands(op, ("input", input), ("weight", weight))
    p = _transpose_params(op, stride, padding, dilation, output_padding, groups)
    out = _core.conv_transpose3d(x.storage, x.dtype, w.storage, w.dtype, p, _stream_for(stream, op))
    return to_kind(out, _core.promote_types(x.dtype, w.dtype), x.kind)


def conv_general(
    input: Any,
    weight: Any,
    /,
    stride: int | tuple[int, int, int] = 1,
    padding: Any = 0,
    kernel_dilation: int | tuple[int, int, int] = 1,
    input_dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    flip: bool = False,
    *,
    stream: Any = None,
) -> Any:
    """mlx.core.conv_general for three spatial dimensions: the input is
    dilated, then padded (int, triple or a (lo, hi) pair of triples), then
    correlated with the dilated kernel (convolved when ``flip``)."""
    op = "conv_general"
    if is_cuda_array(input) or is_cuda_array(weight):
        return _two_operands_cuda(
            op,
            _core._cuda_conv_general,
            _core._conv_general_output_shape,
            input,
            weight,
            lambda: _general_params(op, stride, padding, kernel_dilation, input_dilation, groups, flip),
            stream,
        )
    x, w = _operands(op, ("input", input), ("weight", weight))
    p = _general_params(op, stride, padding, kernel_dilation, input_dilation, groups, flip)
    out = _core.conv_general(x.storage, x.dtype, w.storage, w.dtype, p, _stream_for(stream, op))
    return to_kind(out, _core.promote_types(x.dtype, w.dtype), x.kind)


def _two_operands_cuda(op, core_op, output_shape, input, weight, make_params, stream):
    """conv_transpose3d / conv_general of arrays in CUDA memory (volconv/_cuda.py)."""
    return _cuda.run(
        op,
        core_op,
        ("input", input),
        ("weight", weight),
        lambda x, w, p: output_shape(tuple(x.array.shape), tuple(w.array.shape), p),
        lambda x, w: make_params(),
        stream,
    )


def _with_result_shape(op, core_op, first, second, shape_name, shape, make_params, stream):
    """The ops given two arrays and the result's shape (the gradients): parse
    both, the shape, then the params (make_params(a, b, shape)), run core_op,
    and return the result as the first array's kind, of promote(a, b)."""
    if is_cuda_array(first[1]) or is_cuda_array(second[1]):
        return _with_result_shape_cuda(op, first, second, shape_name, shape, make_params, stream)
    a, b = _operands(op, first, second)
    result_shape = _shape5(shape, op, shape_name)
    p = make_params(a, b, result_shape)
    out = core_op(a.storage, a.dtype, b.storage, b.dtype, result_shape, p, _stream_for(stream, op))
    return to_kind(out, _core.promote_types(a.dtype, b.dtype), a.kind)


_CUDA_RESULT_SHAPE_OPS = {
    "conv3d_grad_input": _core._cuda_conv3d_grad_input,
    "conv3d_grad_weight": _core._cuda_conv3d_grad_weight,
    "conv_transpose3d_grad_input": _core._cuda_conv_transpose3d_grad_input,
    "conv_transpose3d_grad_weight": _core._cuda_conv_transpose3d_grad_weight,
    "conv_general_grad_weight": _core._cuda_conv_general_grad_weight,
}


def _with_result_shape_cuda(op, first, second, shape_name, shape, make_params, stream):
    """_with_result_shape for arrays in CUDA memory."""
    result_shape = _shape5(shape, op, shape_name)
    # CudaOperand reads as an Operand (its .storage is the array) for make_params.
    return _cuda.run(
        op,
        _CUDA_RESULT_SHAPE_OPS[op],
        first,
        second,
        lambda a, b, p: result_shape,
        lambda a, b: make_params(a, b, result_shape),
        stream,
    )


def conv3d_grad_input(
    grad_output: Any,
    weight: Any,
    input_shape: Sequence[int],
    /,
    stride: int | tuple[int, int, int] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    *,
    stream: Any = None,
    padding_mode: Any = "zeros",
) -> Any:
    """The gradient of ``conv3d(x, weight, ...)`` with respect to x (of shape
    ``input_shape``) for the output gradient ``grad_output``; the keywords
    mean what they mean for conv3d (padding_mode too: the gradient of a padded
    position is added to the input position it read). Dtype:
    promote(grad_output, weight)."""
    op = "conv3d_grad_input"
    return _with_result_shape(
        op,
        _core.conv3d_grad_input,
        ("grad_output", grad_output),
        ("weight", weight),
        "input_shape",
        input_shape,
        lambda g, w, shape: conv_params(
            padding, stride, dilation, groups, w.storage.shape[1:4], op, padding_mode
        ),
        stream,
    )


def conv3d_grad_weight(
    input: Any,
    grad_output: Any,
    weight_shape: Sequence[int],
    /,
    stride: int | tuple[int, int, int] = 1,
    padding: Any = 0,
    dilation: int | tuple[int, int, int] = 1,
    groups: int = 1,
    *,
    stream: Any = None,
    padding_mode: Any = "zeros",
) -> Any:
    """The gradient of ``conv3d(input, w, ...)`` with respect to w (of shape
    ``weight_shape``) for the output gradient ``grad_output``. Dtype:
    promote(input, grad_output)."""
    op = "conv3d_grad_weight"
    return _with_result_shape(
        op,
        _core.conv3d_grad_weight,
        ("input", input),
        ("grad_output", grad_output),
        "weight_shape",
        weight_shape,
        lambda x, g, shape: conv_params(padding, stride, dilation, groups, shape[1:4], op, padding_mode),
        stream,
    )


# The gradients that make conv_transpose3d and conv_general differentiable,
# for the framework wrappers (not public API yet).


def _conv_transpose3d_grad_input(
    grad_output,
    weight,
    input_shape,
    stride=1,
    padding=0,
    dilation=1,
    output_padding=0,
    groups=1,
    *,
    stream=None,
):
    op = "conv_transpose3d_grad_input"
    return _with_result_shape(
        op,
        _core.conv_transpose3d_grad_input,
        ("grad_output", grad_output),
        ("weight", weight),
        "input_shape",
        input_shape,
        lambda g, w, shape: _transpose_params(op, stride, padding, dilation, output_padding, groups),
        stream,
    )


def _conv_transpose3d_grad_weight(
    input,
    grad_output,
    weight_shape,
    stride=1,
    padding=0,
    dilation=1,
    output_padding=0,
    groups=1,
    *,
    stream=None,
):
    op = "conv_transpose3d_grad_weight"
    return _with_result_shape(
        op,
        _core.conv_transpose3d_grad_weight,
        ("input", input),
        ("grad_output", grad_output),
        "weight_shape",
        weight_shape,
        lambda x, g, shape: _transpose_params(op, stride, padding, dilation, output_padding, groups),
        stream,
    )


def _conv_general_grad_weight(
    input,
    grad_output,
    weight_shape,
    stride=1,
    padding=0,
    kernel_dilation=1,
    input_dilation=1,
    groups=1,
    flip=False,
    *,
    stream=None,
):
    op = "conv_general_grad_weight"
    return _with_result_shape(
        op,
        _core.conv_general_grad_weight,
        ("input", input),
        ("grad_output", grad_output),
        "weight_shape",
        weight_shape,
        lambda x, g, shape: _general_params(
            op, stride, padding, kernel_dilation, input_dilation, groups, flip
        ),
        stream,
    )
