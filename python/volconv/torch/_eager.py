"""The eager fast path: conv3d and conv_transpose3d as torch.autograd.Functions
over the custom ops' implementations. A call through torch's dispatcher to
a custom op costs about 70 us of host time, and one through its backward
as much again (measured on the EPYC: 165 us against 97 for the op's own
Python), which leaves a GPU idle on small problems. The Functions run the
same code and the same backward formula (_ops._conv3d_vjp), so results are
identical; functional.py takes them only where the dispatcher adds nothing:
not under torch.compile or export (which must see the ops), not under
autocast (the ops' autocast kernel casts), and for plain tensors (fake and
other subclasses dispatch)."""

from __future__ import annotations

import torch
from torch import Tensor

from volconv.torch import _ops

_PLAIN = (Tensor, torch.nn.Parameter)
# Where the ops' implementations run: the CPU (_backends.py), CUDA
# (_cuda_kernels.py, _cudnn_torch.py).
_DEVICES = ("cpu", "cuda")


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def eager(*tensors: Tensor | None) -> bool:
    """True where the Functions below may stand in for the ops."""
    device = tensors[0].device.type
    if device not in _DEVICES or torch.compiler.is_compiling() or _autocast_enabled(device):
        return False  # meta tensors, say, take the ops' fake kernels
    return all(t is None or type(t) in _PLAIN for t in tensors)


def _conv3d_backward(ctx, grad):
    if torch.is_grad_enabled():  # create_graph: the ops, which refuse a second backward
        return _ops._conv3d_backward(ctx, grad)
    return _ops._conv3d_vjp(
        ctx, grad, _ops._conv3d_impl, _ops._conv3d_grad_input_impl, _ops._conv3d_grad_weight_impl
    )


def _conv_transpose3d_backward(ctx, grad):
    if torch.is_grad_enabled():
        return _ops._conv_transpose3d_backward(ctx, grad)
    return _ops._conv_transpose3d_vjp(
        ctx, grad, _ops._conv_transpose3d_grad_input_impl, _ops._conv_transpose3d_grad_weight_impl
    )


def _function(name: str, impl, setup, backward) -> type:
    """An old-style autograd.Function (forward takes ctx) over an op's
    implementation: torch's new style, a separate setup_context, cost 87 us
    a call against 10 (the EPYC, torch 2.13)."""

    def forward(ctx, *args):
        y = impl(*args)
        setup(ctx, args, y)
        return y

    return type(
        name,
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


Conv3d = _function("Conv3d", _ops._conv3d_impl, _ops._conv3d_setup, _conv3d_backward)
ConvTranspose3d = _function(
    "ConvTranspose3d", _ops._conv_transpose3d_impl, _ops._conv_transpose3d_setup, _conv_transpose3d_backward
)
