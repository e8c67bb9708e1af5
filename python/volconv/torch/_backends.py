"""Which kernels run a tensor's op through the plain volconv API: one
function per device type. A backend takes an op name of the volconv API
(channels-last arrays, MLX weight layout) and its arguments, and returns a
channels-last tensor on the same device. CUDA tensors do not come here: the
ops call volconv's CUDA kernels on torch's tensors directly
(_cuda_kernels.py) or torch's own cuDNN calls (_cudnn_torch.py). MPS
(through the Metal backend) slots in as one more entry in _BACKENDS."""

from typing import Any, Callable

import torch

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


def _cpu(op: str, *args: Any, **kwargs: Any) -> torch.Tensor:
    args = tuple(_detached(a) for a in args)
    kwargs = {k: _detached(v) for k, v in kwargs.items()}
    return _OPS[op](*args, stream=volconv.cpu, **kwargs)


_BACKENDS: "dict[str, Callable[..., torch.Tensor]]" = {"cpu": _cpu}


def run(op: str, public_name: str, device: torch.device, *args: Any, **kwargs: Any) -> torch.Tensor:
    """`op` on the kernels of `device`; a clear error where none exist yet."""
    backend = _BACKENDS.get(device.type)
    if backend is None:
        raise ValueError(
            f"[{public_name}] Expected CPU or CUDA tensors but got tensors on {device}: volconv.torch runs on "
            "the CPU and on NVIDIA GPUs for now (MPS tensors are not supported yet); move them with .cpu()."
        )
    return backend(op, *args, **kwargs)
