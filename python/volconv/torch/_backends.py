"""Which kernels run a tensor's op: one function per device type. A backend
takes an op name of the volconv API (channels-last arrays, MLX weight
layout) and its arguments, and returns a channels-last tensor on the same
device. MPS (through the Metal backend) slots in as one more entry in
_BACKENDS."""

from typing import Any, Callable

import torch
import torch.nn.functional as F

import volconv
from volconv import _training

# The volconv functions a backend is asked for, by name.
_OPS: "dict[str, Callable[..., Any]]" = {
    "conv3d": volconv.conv3d,
    "conv3d_grad_input": volconv.conv3d_grad_input,
    "conv3d_grad_weight": volconv.conv3d_grad_weight,
    "conv_transpose3d": volconv.conv_transpose3d,
    "conv_transpose3d_grad_input": _training._conv_transpose3d_grad_input,
    "conv_transpose3d_grad_weight": _training._conv_transpose3d_grad_weight,
}


def _detached(a: Any) -> Any:
    # The custom op's autograd formula owns differentiation: the kernels see
    # plain data (and the plain API's requires-grad warning never fires here).
    return a.detach() if isinstance(a, torch.Tensor) and a.requires_grad else a


def _plain_data(args: tuple, kwargs: dict) -> tuple[list, dict]:
    return [_detached(a) for a in args], {k: _detached(v) for k, v in kwargs.items()}


def _cpu(op: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    args, kwargs = _plain_data(args, kwargs)
    return _OPS[op](*args, stream=volconv.cpu, **kwargs)


# The epilogue where the kernels have none (the CUDA backend): torch's own
# ops on the conv's fresh result (in place where torch has the op), in the
# result's dtype, as a torch.nn model computes it.
_ACTIVATIONS_IN_PLACE: "dict[str, Callable[[torch.Tensor], torch.Tensor]]" = {
    "relu": lambda y: y.relu_(),
    "silu": lambda y: F.silu(y, inplace=True),
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
}


def _cuda(op: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    """CUDA tensors: volconv's CUDA kernels (the problems _ops.py keeps off
    torch's own calls: _cudnn_torch.on_volconv_kernels), ordered on the
    tensors' current stream. They pad with zeros only (functional.conv3d pads
    other modes with F.pad first) and have no fused epilogue, so bias,
    activation and residual follow as torch ops."""
    # No detaching: the CUDA route reads the tensors through data_ptr(), and
    # the epilogue below runs where autograd records nothing (inside a
    # Function's forward, or below the custom op's autograd key).
    bias = kwargs.pop("bias", None)
    activation = kwargs.pop("activation", None)
    residual = kwargs.pop("residual", None)
    y = _OPS[op](*args, **kwargs)
    if bias is not None:
        y += bias  # NDHWC: the bias broadcasts over C, last
    return activate_and_add(y, activation, residual)


def activate_and_add(
    y: torch.Tensor, activation: "str | None", residual: "torch.Tensor | None"
) -> torch.Tensor:
    """The epilogue's activation, then the residual, on a fresh conv result."""
    if activation is not None:
        y = _ACTIVATIONS_IN_PLACE[activation](y)
    if residual is not None:
        y += residual
    return y


_BACKENDS: "dict[str, Callable[..., torch.Tensor]]" = {"cpu": _cpu, "cuda": _cuda}


def run(op: str, public_name: str, device: torch.device, *args: Any, **kwargs: Any) -> torch.Tensor:
    """`op` on the kernels of `device`; a clear error where none exist yet."""
    backend = _BACKENDS.get(device.type)
    if backend is None:
        raise ValueError(
            f"[{public_name}] Expected CPU or CUDA tensors but got tensors on {device}: volconv.torch runs on "
            "the CPU and on NVIDIA GPUs for now (MPS tensors are not supported yet); move them with .cpu()."
        )
    return backend(op, *args, **kwargs)
