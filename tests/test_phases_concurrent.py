"""Data problems split by stride phase run their phases all at once, one per
thread, when there are enough to keep every thread busy (conv_phases.cpp):
the planner says so, and the results are the float64 reference's and
bit-identical for any thread count. Also the small-C_out row kernel behind
an input gradient (C_in <= 4 forward convs: a U-Net's first layer)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_training import (
    assert_close,
    conv3d_grad_input_reference,
    conv_transpose3d_reference,
)
from training_checks import data, f64

import volconv as vc

from conftest import cpu_plan, cpu_problem_plan


@pytest.fixture
def threads():
    before = vc.get_num_threads()
    yield
    vc.set_num_threads(before)


# (forward input shape, C_out, kernel, stride, padding): input gradients whose
# phases differ in size (k3 s2: 1 to 8 taps), a stride of 3 (27 phases), groups.
GRAD_INPUT = [
    ((1, 6, 7, 8, 9), 12, 3, 2, 1, 1),
    ((2, 7, 6, 9, 5), 4, (3, 2, 3), 3, (1, 0, 1), 1),
    ((1, 6, 6, 6, 6), 9, 3, 2, 1, 3),
]


@pytest.mark.parametrize("case", GRAD_INPUT, ids=lambda c: f"{c[0]}-{c[1]}-s{c[3]}-g{c[5]}")
def test_grad_input_phases_concurrent(threads, case):
    shape, cout, k, s, p, g = case
    kk = (k,) * 3 if isinstance(k, int) else k
    w = data((cout, *kk, shape[4] // g), 31, "float32")
    gy_shape = vc.conv3d(np.zeros(shape, np.float32), w, stride=s, padding=p, groups=g).shape
    gy = data(gy_shape, 32, "float32")
    kw = dict(stride=s, padding=p, groups=g)
    results = {}
    for n in (1, 2, 3):
        vc.set_num_threads(n)
        plan = cpu_problem_plan("conv3d_grad_input", gy, w, shape, **kw)
        assert plan["name"] == ("phases" if n == 1 else "phases+concurrent"), (n, plan)
        results[n] = vc.conv3d_grad_input(gy, w, shape, **kw)
    assert results[1].tobytes() == results[2].tobytes() == results[3].tobytes()
    p3 = (p,) * 3 if isinstance(p, int) else p
    rk = dict(stride=(s,) * 3, pad_lo=p3, pad_hi=p3, groups=g)
    ref = conv3d_grad_input_reference(gy, w, shape, **rk)
    scale = conv3d_grad_input_reference(np.abs(f64(gy)), np.abs(f64(w)), shape, **rk)
    assert_close(results[2], ref, scale, "float32", "grad_input")


def test_transpose_merged_phases_concurrent(threads):
    # k2 s2: the W phases read the same input slice and merge (4 jobs of 2).
    x = data((1, 5, 6, 7, 8), 33, "float32")
    w = data((6, 2, 2, 2, 8), 34, "float32")
    results = {}
    for n in (1, 2):
        vc.set_num_threads(n)
        plan = cpu_problem_plan("conv_transpose3d", x, w, stride=2)
        assert plan["name"] == ("phases" if n == 1 else "phases+concurrent"), (n, plan)
        results[n] = vc.conv_transpose3d(x, w, stride=2)
    assert results[1].tobytes() == results[2].tobytes()
    rk = dict(stride=(2, 2, 2), pad_lo=(0, 0, 0), pad_hi=(0, 0, 0), dilation=(1, 1, 1), groups=1)
    ref = conv_transpose3d_reference(f64(x), f64(w), **rk)
    scale = conv_transpose3d_reference(np.abs(f64(x)), np.abs(f64(w)), **rk)
    assert_close(results[2], ref, scale, "float32", "conv_transpose3d")


def test_few_phases_stay_sequential(threads):
    # 2 phases (stride 2 along D only) cannot keep 3 threads busy.
    vc.set_num_threads(3)
    w = data((8, 3, 1, 1, 4), 35, "float32")
    gy = data((1, 3, 4, 4, 8), 36, "float32")
    plan = cpu_problem_plan("conv3d_grad_input", gy, w, (1, 6, 4, 4, 4), stride=(2, 1, 1), padding=(1, 0, 0))
    assert plan["name"] == "phases", plan


@pytest.mark.parametrize("cin,cout,groups", [(2, 16, 1), (3, 9, 1), (8, 24, 2)])
def test_grad_input_small_cout(cin, cout, groups):
    # The input gradient of a conv with few input channels per group is a
    # forward conv with few output channels: the small-C_out row kernel.
    shape = (2, 5, 6, 13, cin)
    w = data((cout, 3, 3, 3, cin // groups), 37, "float32")
    gy = data((*shape[:4], cout), 38, "float32")
    flipped = np.ascontiguousarray(
        w[:, ::-1, ::-1, ::-1, :]
        .reshape(groups, cout // groups, 3, 3, 3, cin // groups)
        .transpose(0, 5, 2, 3, 4, 1)
    ).reshape(cin, 3, 3, 3, cout // groups)
    assert cpu_plan(gy, flipped, padding=1, groups=groups)["path"] == "small-cout"
    got = vc.conv3d_grad_input(gy, w, shape, padding=1, groups=groups)
    rk = dict(stride=(1, 1, 1), pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=groups)
    ref = conv3d_grad_input_reference(gy, w, shape, **rk)
    scale = conv3d_grad_input_reference(np.abs(f64(gy)), np.abs(f64(w)), shape, **rk)
    assert_close(got, ref, scale, "float32", "grad_input via small-cout")
