"""The torch.library custom ops: volconv::conv3d and volconv::conv_transpose3d
with their gradients as ops of their own, each with a fake (meta) kernel and
an autograd formula, so that eager mode, gradcheck and torch.compile see one
opaque op each.

Every op takes and returns NCDHW logical tensors (torch's weight layouts);
the kernels run in NDHWC: a channels_last_3d tensor permuted to NDHWC is a
contiguous view, so nothing is copied, and every result is channels_last_3d
(the fake kernels declare exactly those strides). Arguments arrive checked
and normalised by volconv/torch/functional.py."""

from typing import Optional

import torch
from torch import Tensor

from volconv._params import compact_geometry, one_or_three
from volconv.torch import _cuda_kernels, _cudnn_torch
from volconv.torch._backends import run
from volconv.torch._epilogue import activate_and_add

_CL3D = torch.channels_last_3d


def _ndhwc(t: Tensor) -> Tensor:
    return t.permute(0, 2, 3, 4, 1)


def _ncdhw(y: Tensor) -> Tensor:
    """A kernel's NDHWC result as the NCDHW channels_last_3d tensor the fake
    kernel declares (a view; a copy only if the strides ever differed)."""
    out = y.permute(0, 4, 1, 2, 3)
    if out.stride() != _cl3d_strides(out.shape):
        out = out.contiguous(memory_format=_CL3D)
    return out


def _cl3d_strides(shape: "torch.Size | list[int]") -> "tuple[int, ...]":
    n, c, d, h, w = shape
    return (c * d * h * w, 1, h * w * c, w * c, c)


def _empty_cl3d(shape: list[int], like: Tensor) -> Tensor:
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=_CL3D)


def _out_size(size: int, k: int, stride: int, lo: int, hi: int, dilation: int) -> int:
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1


def _transposed_out_size(
    size: int, k: int, stride: int, lo: int, hi: int, dilation: int, out_pad: int
) -> int:
    return (size - 1) * stride - lo - hi + dilation * (k - 1) + out_pad + 1


def _check_one_dtype_and_device(op: str, *tensors: Optional[Tensor]) -> None:
    # F.conv3d's rules (autocast casts before the kernel, so this sees the
    # cast tensors): one dtype, one device.
    dtype, device = tensors[0].dtype, tensors[0].device
    for t in tensors:
        if t is not None and (t.dtype != dtype or t.device != device):
            given = [t for t in tensors if t is not None]
            what, names = (
                ("dtype", [str(t.dtype) for t in given])
                if any(t.dtype != dtype for t in given)
                else ("device", [str(t.device) for t in given])
            )
            raise ValueError(
                f"[volconv.torch.{op}] Expected input, weight, bias and residual to have one {what} but got "
                + ", ".join(n.replace("torch.", "") for n in names)
                + "."
            )


def _like_parameter(grad: Tensor, param: Tensor) -> Tensor:
    """`grad` with exactly the parameter's strides (its own memory format),
    as autograd's layout contract and DDP's gradient buckets expect."""
    param_strides = param.stride()
    if grad.stride() == param_strides:
        return grad
    if all(a == b for n, a, b in zip(param.shape, grad.stride(), param_strides) if n != 1):
        # Only the strides of size-1 dimensions differ (a depthwise weight's
        # C_in / groups, in either memory format), and those address nothing:
        # the same elements at the same places, relabelled without a copy.
        return grad.as_strided(param.shape, param_strides)
    return torch.empty_like(param).copy_(grad)


# MLX's transposed-conv weight is (C_out, k..., C_in / groups); torch's is
# (C_in, C_out / groups, k...). groups == 1 is a permuted view; otherwise the
# (small) weight is regrouped once.
def _transposed_weight_to_volconv(w: Tensor, groups: int) -> Tensor:
    c_in, c_out_g = w.shape[0], w.shape[1]
    k = list(w.shape[2:])
    g = w.reshape([groups, c_in // groups, c_out_g] + k).permute(0, 2, 3, 4, 5, 1)
    return g.reshape([groups * c_out_g] + k + [c_in // groups])


def _transposed_weight_from_volconv(w: Tensor, groups: int) -> Tensor:
    c_out, k, c_in_g = w.shape[0], list(w.shape[1:4]), w.shape[4]
    g = w.reshape([groups, c_out // groups] + k + [c_in_g]).permute(0, 5, 1, 2, 3, 4)
    return g.reshape([groups * c_in_g, c_out // groups] + k)


def _activation_grad(grad: Tensor, pre: Tensor, activation: str) -> Tensor:
    """d activation(pre) / d pre applied to grad: torch's own formulas."""
    if activation == "relu":
        return torch.ops.aten.threshold_backward(grad, pre, 0)
    if activation == "silu":
        return torch.ops.aten.silu_backward(grad, pre)
    return torch.ops.aten.gelu_backward(grad, pre, approximate="tanh")


def _no_double_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(
            f"[volconv.torch] {name} has no derivative of its own: double backward (a gradient of a "
            "gradient, e.g. create_graph=True followed by another backward) is not supported by volconv."
        )

    return backward


# ---- conv3d ---------------------------------------------------------------


def _conv3d_impl(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    residual: Optional[Tensor],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    activation: Optional[str],
    padding_mode: str = "zeros",
) -> Tensor:
    _check_one_dtype_and_device("conv3d", input, weight, bias, residual)
    if input.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, input.shape[1], weight.shape[0], input.dtype):
            return _cuda_kernels.conv3d(
                input,
                weight,
                bias,
                residual,
                stride,
                padding_lo,
                padding_hi,
                dilation,
                groups,
                activation,
                padding_mode,
            )
        y = _cudnn_torch.conv3d(
            input, weight, bias, stride, padding_lo, padding_hi, dilation, groups, padding_mode
        )
        return activate_and_add(y, activation, residual)
    y = run(
        "conv3d",
        "volconv.torch.conv3d",
        input.device,
        _ndhwc(input),
        _ndhwc(weight),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        groups,
        bias=bias,
        activation=activation,
        residual=None if residual is None else _ndhwc(residual),
        padding_mode=padding_mode,
    )
    return _ncdhw(y)


conv3d_op = torch.library.custom_op("volconv::conv3d", mutates_args=())(_conv3d_impl)


@conv3d_op.register_fake
def _(
    input,
    weight,
    bias,
    residual,
    stride,
    padding_lo,
    padding_hi,
    dilation,
    groups,
    activation,
    padding_mode="zeros",
):
    _check_one_dtype_and_device("conv3d", input, weight, bias, residual)
    spatial = [
        _out_size(
            input.shape[2 + i], weight.shape[2 + i], stride[i], padding_lo[i], padding_hi[i], dilation[i]
        )
        for i in range(3)
    ]
    return _empty_cl3d([input.shape[0], weight.shape[0]] + spatial, input)


def _conv3d_setup(ctx, inputs, output):
    input, weight, bias, residual, stride, lo, hi, dilation, groups, activation, padding_mode = inputs
    ctx.save_for_backward(input, weight, bias)
    ctx.params = (stride, lo, hi, dilation, groups)
    ctx.activation = activation
    ctx.padding_mode = padding_mode


def _conv3d_backward(ctx, grad):
    return _conv3d_vjp(ctx, grad, conv3d_op, conv3d_grad_input_op, conv3d_grad_weight_op)


def _conv3d_vjp(ctx, grad, conv3d, grad_input, grad_weight):
    """conv3d's backward on the given functions: the ops (what autograd and
    torch.compile see) or their implementations (eager, _eager.py)."""
    input, weight, bias = ctx.saved_tensors
    stride, lo, hi, dilation, groups = ctx.params
    grad = grad.contiguous(memory_format=_CL3D)  # the kernels' fast layout
    if ctx.activation is not None:
        # Only a direct call of the op with an activation in grad mode gets
        # here: functional.conv3d saves the pre-activation instead (see there).
        pre = conv3d(input, weight, bias, None, stride, lo, hi, dilation, groups, None, ctx.padding_mode)
        grad = _activation_grad(grad, pre, ctx.activation)
    need_x, need_w, need_b, need_r = ctx.needs_input_grad[:4]
    gx = (
        grad_input(grad, weight, list(input.shape), stride, lo, hi, dilation, groups, ctx.padding_mode)
        if need_x
        else None
    )
    gw = None
    if need_w:
        gw = grad_weight(input, grad, list(weight.shape), stride, lo, hi, dilation, groups, ctx.padding_mode)
        gw = _like_parameter(gw, weight)
    gb = grad.sum((0, 2, 3, 4)) if need_b else None
    gr = grad if need_r else None
    return gx, gw, gb, gr, None, None, None, None, None, None, None


conv3d_op.register_autograd(_conv3d_backward, setup_context=_conv3d_setup)


def _conv3d_grad_input_impl(
    grad: Tensor,
    weight: Tensor,
    input_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    padding_mode: str = "zeros",
) -> Tensor:
    n, c, d, h, w = input_size
    if grad.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, c, weight.shape[0], grad.dtype):
            return _cuda_kernels.conv3d_grad_input(
                grad, weight, input_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode
            )
        return _cudnn_torch.conv3d_grad_input(
            grad, weight, input_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode
        )
    y = run(
        "conv3d_grad_input",
        "volconv.torch.conv3d",
        grad.device,
        _ndhwc(grad),
        _ndhwc(weight),
        (n, d, h, w, c),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        groups,
        padding_mode=padding_mode,
    )
    return _ncdhw(y)


conv3d_grad_input_op = torch.library.custom_op("volconv::conv3d_grad_input", mutates_args=())(
    _conv3d_grad_input_impl
)


@conv3d_grad_input_op.register_fake
def _(grad, weight, input_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode="zeros"):
    return _empty_cl3d(list(input_size), grad)


def _conv3d_grad_weight_impl(
    input: Tensor,
    grad: Tensor,
    weight_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    dilation: list[int],
    groups: int,
    padding_mode: str = "zeros",
) -> Tensor:
    c_out, c_in_g, kd, kh, kw = weight_size
    if input.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, input.shape[1], c_out, input.dtype):
            return _cuda_kernels.conv3d_grad_weight(
                input, grad, weight_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode
            )
        return _cudnn_torch.conv3d_grad_weight(
            input, grad, weight_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode
        )
    y = run(
        "conv3d_grad_weight",
        "volconv.torch.conv3d",
        input.device,
        _ndhwc(input),
        _ndhwc(grad),
        (c_out, kd, kh, kw, c_in_g),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        groups,
        padding_mode=padding_mode,
    )
    return _ncdhw(y)


conv3d_grad_weight_op = torch.library.custom_op("volconv::conv3d_grad_weight", mutates_args=())(
    _conv3d_grad_weight_impl
)


@conv3d_grad_weight_op.register_fake
def _(input, grad, weight_size, stride, padding_lo, padding_hi, dilation, groups, padding_mode="zeros"):
    return _empty_cl3d(list(weight_size), input)


# ---- conv_transpose3d -----------------------------------------------------


def _conv_transpose3d_impl(
    input: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    _check_one_dtype_and_device("conv_transpose3d", input, weight, bias)
    if input.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, weight.shape[0], weight.shape[1] * groups, weight.dtype):
            return _cuda_kernels.conv_transpose3d(
                input, weight, bias, stride, padding_lo, padding_hi, output_padding, dilation, groups
            )
        return _cudnn_torch.conv_transpose3d(
            input, weight, bias, stride, padding_lo, padding_hi, output_padding, dilation, groups
        )
    y = run(
        "conv_transpose3d",
        "volconv.torch.conv_transpose3d",
        input.device,
        _ndhwc(input),
        _transposed_weight_to_volconv(weight, groups),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        one_or_three(output_padding),
        groups,
    )
    if bias is not None:
        y += bias  # y is the kernel's fresh NDHWC result: bias broadcasts over C, last
    return _ncdhw(y)


conv_transpose3d_op = torch.library.custom_op("volconv::conv_transpose3d", mutates_args=())(
    _conv_transpose3d_impl
)


@conv_transpose3d_op.register_fake
def _(input, weight, bias, stride, padding_lo, padding_hi, output_padding, dilation, groups):
    _check_one_dtype_and_device("conv_transpose3d", input, weight, bias)
    spatial = [
        _transposed_out_size(
            input.shape[2 + i],
            weight.shape[2 + i],
            stride[i],
            padding_lo[i],
            padding_hi[i],
            dilation[i],
            output_padding[i],
        )
        for i in range(3)
    ]
    return _empty_cl3d([input.shape[0], weight.shape[1] * groups] + spatial, input)


def _conv_transpose3d_setup(ctx, inputs, output):
    input, weight, bias, stride, lo, hi, output_padding, dilation, groups = inputs
    ctx.save_for_backward(input, weight)
    ctx.params = (stride, lo, hi, output_padding, dilation, groups)


def _conv_transpose3d_backward(ctx, grad):
    return _conv_transpose3d_vjp(ctx, grad, conv_transpose3d_grad_input_op, conv_transpose3d_grad_weight_op)


def _conv_transpose3d_vjp(ctx, grad, grad_input, grad_weight):
    """conv_transpose3d's backward on the ops or their implementations."""
    input, weight = ctx.saved_tensors
    params = ctx.params
    grad = grad.contiguous(memory_format=_CL3D)
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    gx = grad_input(grad, weight, list(input.shape), *params) if need_x else None
    gw = None
    if need_w:
        gw = grad_weight(input, grad, list(weight.shape), *params)
        gw = _like_parameter(gw, weight)
    gb = grad.sum((0, 2, 3, 4)) if need_b else None
    return gx, gw, gb, None, None, None, None, None, None


conv_transpose3d_op.register_autograd(_conv_transpose3d_backward, setup_context=_conv_transpose3d_setup)


def _conv_transpose3d_grad_input_impl(
    grad: Tensor,
    weight: Tensor,
    input_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    n, c, d, h, w = input_size
    if grad.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, weight.shape[0], weight.shape[1] * groups, weight.dtype):
            return _cuda_kernels.conv_transpose3d_grad_input(
                grad, weight, input_size, stride, padding_lo, padding_hi, output_padding, dilation, groups
            )
        return _cudnn_torch.conv_transpose3d_grad_input(
            grad, weight, input_size, stride, padding_lo, padding_hi, output_padding, dilation, groups
        )
    y = run(
        "conv_transpose3d_grad_input",
        "volconv.torch.conv_transpose3d",
        grad.device,
        _ndhwc(grad),
        _transposed_weight_to_volconv(weight, groups),
        (n, d, h, w, c),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        one_or_three(output_padding),
        groups,
    )
    return _ncdhw(y)


conv_transpose3d_grad_input_op = torch.library.custom_op(
    "volconv::conv_transpose3d_grad_input", mutates_args=()
)(_conv_transpose3d_grad_input_impl)


@conv_transpose3d_grad_input_op.register_fake
def _(grad, weight, input_size, stride, padding_lo, padding_hi, output_padding, dilation, groups):
    return _empty_cl3d(list(input_size), grad)


def _conv_transpose3d_grad_weight_impl(
    input: Tensor,
    grad: Tensor,
    weight_size: list[int],
    stride: list[int],
    padding_lo: list[int],
    padding_hi: list[int],
    output_padding: list[int],
    dilation: list[int],
    groups: int,
) -> Tensor:
    c_in, c_out_g, kd, kh, kw = weight_size
    if input.is_cuda:
        if _cudnn_torch.on_volconv_kernels(groups, c_in, c_out_g * groups, input.dtype):
            return _cuda_kernels.conv_transpose3d_grad_weight(
                input, grad, weight_size, stride, padding_lo, padding_hi, output_padding, dilation, groups
            )
        return _cudnn_torch.conv_transpose3d_grad_weight(
            input, grad, weight_size, stride, padding_lo, padding_hi, output_padding, dilation, groups
        )
    y = run(
        "conv_transpose3d_grad_weight",
        "volconv.torch.conv_transpose3d",
        input.device,
        _ndhwc(input),
        _ndhwc(grad),
        (c_out_g * groups, kd, kh, kw, c_in // groups),
        *compact_geometry(stride, padding_lo, padding_hi, dilation),
        one_or_three(output_padding),
        groups,
    )
    # Regrouped into torch's (C_in, C_out / groups, k...); channels_last_3d as the fake says.
    return _transposed_weight_from_volconv(y, groups).contiguous(memory_format=_CL3D)


conv_transpose3d_grad_weight_op = torch.library.custom_op(
    "volconv::conv_transpose3d_grad_weight", mutates_args=()
)(_conv_transpose3d_grad_weight_impl)


@conv_transpose3d_grad_weight_op.register_fake
def _(input, grad, weight_size, stride, padding_lo, padding_hi, output_padding, dilation, groups):
    return _empty_cl3d(list(weight_size), input)


for _op, _name in (
    (conv3d_grad_input_op, "conv3d's input gradient"),
    (conv3d_grad_weight_op, "conv3d's weight gradient"),
    (conv_transpose3d_grad_input_op, "conv_transpose3d's input gradient"),
    (conv_transpose3d_grad_weight_op, "conv_transpose3d's weight gradient"),
):
    _op.register_autograd(_no_double_backward(_name))

# Autocast as for torch's own conv: under torch.autocast(device_type), the
# floating tensors on that device (float64 aside) are cast to the context's
# dtype, then the op runs with autocast off. torch.library.register_autocast
# would fix one dtype when registered (bfloat16 where the context asks for
# float16, say), so the kernel reads the context's dtype at each call.
_AUTOCAST_KEYS = {"cpu": "AutocastCPU", "cuda": "AutocastCUDA"}
_LIB = torch.library.Library("volconv", "IMPL")


def _autocast_dtype(device_type: str) -> torch.dtype:
    if hasattr(torch, "get_autocast_dtype"):
        return torch.get_autocast_dtype(device_type)
    return torch.get_autocast_cpu_dtype() if device_type == "cpu" else torch.get_autocast_gpu_dtype()


def _autocast_kernel(overload, device_type: str):
    def kernel(keyset, *args):
        dtype = _autocast_dtype(device_type)
        cast = [
            a.to(dtype)
            if isinstance(a, Tensor)
            and a.is_floating_point()
            and a.device.type == device_type
            and a.dtype is not torch.float64
            else a
            for a in args
        ]
        with torch.autocast(device_type, enabled=False):
            return overload(*cast)

    return kernel


for _name in ("conv3d", "conv_transpose3d"):
    for _device, _key in _AUTOCAST_KEYS.items():
        _LIB.impl(
            _name,
            _autocast_kernel(getattr(torch.ops.volconv, _name).default, _device),
            _key,
            with_keyset=True,
        )
