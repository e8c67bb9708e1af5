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
