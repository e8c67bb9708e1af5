"""The checks the training-op tests share (tests/test_training_ops.py and
tests/test_training_depthwise.py): random operands, and volconv's results
against the float64 references of reference_training.py. A case is any
object with kwargs() (volconv keywords) and ref_kwargs() (the reference's)."""

from __future__ import annotations

import numpy as np
from reference_training import (
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)

import volconv as vc

from conftest import cast


def data(shape, seed, dtype):
    return cast(np.random.default_rng(seed).standard_normal(shape), dtype)


def f64(a):
    return np.asarray(a, dtype=np.float64)


def dot(a, b):
    return float(np.sum(f64(a) * f64(b)))


def check_conv3d_grads(case, x, w, gy, dtype, what):
    """conv3d_grad_input and conv3d_grad_weight against the references."""
    gx = vc.conv3d_grad_input(gy, w, x.shape, **case.kwargs())
    gw = vc.conv3d_grad_weight(x, gy, w.shape, **case.kwargs())
    assert gx.dtype == x.dtype and gw.dtype == x.dtype
    rk = case.ref_kwargs()
    ref = conv3d_grad_input_reference(f64(gy), f64(w), x.shape, **rk)
    scale = conv3d_grad_input_reference(np.abs(f64(gy)), np.abs(f64(w)), x.shape, **rk)
    assert_close(gx, ref, scale, dtype, f"{what}grad_input")
    ref = conv3d_grad_weight_reference(f64(x), f64(gy), w.shape, **rk)
    scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy)), w.shape, **rk)
    assert_close(gw, ref, scale, dtype, f"{what}grad_weight")


def check_conv_transpose3d(case, x, w, dtype, what):
    """conv_transpose3d (with the case's output_padding) against the reference."""
    y = vc.conv_transpose3d(x, w, output_padding=case.output_padding, **case.kwargs())
    rk = dict(case.ref_kwargs(), output_padding=case.output_padding)
    ref = conv_transpose3d_reference(f64(x), f64(w), **rk)
    scale = conv_transpose3d_reference(np.abs(f64(x)), np.abs(f64(w)), **rk)
    assert y.dtype == x.dtype
    assert_close(y, ref, scale, dtype, what)


def assert_adjoint(forward, x, w, g, gx, gw):
    """<conv(x, w), g> == <x, grad_input(g, w)> == <w, grad_weight(x, g)> in float64."""
    lhs = dot(forward, g)
    scale = float(np.sum(np.abs(f64(forward)) * np.abs(f64(g)))) + 1.0
    assert abs(lhs - dot(x, gx)) <= 1e-11 * scale, (lhs, dot(x, gx))
    assert abs(lhs - dot(w, gw)) <= 1e-11 * scale, (lhs, dot(w, gw))


def torch_conv3d_grads(torch, x, w, case, groups, seed, dtype):
    """torch.autograd of F.conv3d(F.pad(x), w) for a random cotangent (seeded):
    (the cotangent in NDHWC, torch's input and weight gradients in NDHWC, float64)."""
    F = torch.nn.functional
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3).requires_grad_()
    wt = torch.from_numpy(w).permute(0, 4, 1, 2, 3).requires_grad_()
    pads = [p for i in (2, 1, 0) for p in (case.pad_lo[i], case.pad_hi[i])]
    y = F.conv3d(F.pad(xt, pads), wt, stride=case.stride, dilation=case.dilation, groups=groups)
    gy = torch.from_numpy(data(tuple(y.shape), seed, dtype))
    y.backward(gy)
    gy_nd = np.ascontiguousarray(gy.permute(0, 2, 3, 4, 1).numpy())
    return gy_nd, f64(xt.grad.permute(0, 2, 3, 4, 1)), f64(wt.grad.permute(0, 2, 3, 4, 1))


def assert_grads_close_to_torch(case, x, w, gy_nd, gx, gw, torch_gx, torch_gw, dtype):
    """volconv's gradients against torch's, within twice the reference's bound
    (both sides round)."""
    rk = case.ref_kwargs()
    scale = conv3d_grad_input_reference(np.abs(f64(gy_nd)), np.abs(f64(w)), x.shape, **rk)
    assert_close(gx, torch_gx, 2 * scale, dtype, "grad_input vs torch")
    scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy_nd)), w.shape, **rk)
    assert_close(gw, torch_gw, 2 * scale, dtype, "grad_weight vs torch")
