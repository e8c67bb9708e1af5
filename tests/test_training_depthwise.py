"""The depthwise backward paths (groups == C_in == C_out): the planner picks
dw-data for conv3d's input gradient and conv_transpose3d, and dw-weight-grad
for the weight gradient, in every dtype; their results against the float64
references (reference_training.py), the adjoint identities, PyTorch's
autograd and F.conv_transpose3d; bits independent of the thread count; each
ISA's loops."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from reference_training import (
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)
from training_checks import (
    assert_adjoint,
    assert_grads_close_to_torch,
    check_conv3d_grads,
    check_conv_transpose3d,
    data,
    dot,
    f64,
    torch_conv3d_grads,
)

import volconv as vc
from volconv import _core, _training

from conftest import FLOAT_DTYPES, cpu_plan, cpu_problem_plan


def t3(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


class DW(NamedTuple):
    name: str
    n: int
    size: tuple
    c: int
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    output_padding: tuple  # transposed only

    def weight_shape(self):
        return (self.c, *self.kernel, 1)

    def kwargs(self):
        return dict(
            stride=self.stride, padding=(self.pad_lo, self.pad_hi), dilation=self.dilation, groups=self.c
        )

    def ref_kwargs(self):
        return dict(
            stride=self.stride, pad_lo=self.pad_lo, pad_hi=self.pad_hi, dilation=self.dilation, groups=self.c
        )


def D(name, n, size, c, k=3, s=1, lo=0, hi=None, d=1, op=0):
    return DW(name, n, t3(size), c, t3(k), t3(s), t3(lo), t3(lo if hi is None else hi), t3(d), t3(op))


# Strides 1-3, dilation, asymmetric padding, channels 1 / 3 / 17 (17: a full
# vector block and a masked tail on every ISA) and 130 (the W-blocked rows'
# 64-channel calls, then a tail call), N > 1, kernels of 3 along W (the
# register-blocked kernel) and of other widths (the span loops).
CASES = [
    D("s1p1_c17", 2, (4, 5, 9), 17, lo=1),
    D("s2p1_c3", 1, (5, 6, 8), 3, s=2, lo=1, op=1),
    D("s3_asym_c17", 2, (7, 5, 10), 17, k=(2, 3, 3), s=(3, 2, 3), lo=(0, 1, 2), hi=(2, 0, 1), op=(2, 1, 0)),
    D("dil2_c1", 1, (6, 7, 9), 1, d=(2, 1, 2), lo=2, op=(1, 0, 1)),
    D("k5w_s2_c17", 1, (4, 4, 11), 17, k=(1, 2, 5), s=(1, 2, 2), lo=(0, 1, 2), hi=(1, 0, 3), op=(0, 1, 1)),
    D("wide_c20", 2, (3, 4, 19), 20, k=(2, 2, 3), lo=(1, 0, 1), hi=(0, 1, 0)),
    D("s1p1_c130", 1, (3, 4, 10), 130, lo=1),
]


def _forward_shape(case):
    x = np.zeros((case.n, *case.size, case.c), np.float32)
    return vc.conv3d(x, np.zeros(case.weight_shape(), np.float32), **case.kwargs()).shape


def _wgrad_loops(isa):
    """The weight-gradient loops each kernel set runs (conv_grad_weight.cpp)."""
    if isa.startswith("avx512"):
        return "wgrad-avx512f"
    return "wgrad-" + (isa if isa in ("avx2", "neon") else "generic")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_planner_takes_the_depthwise_paths_for_every_dtype(dtype):
    case = CASES[1]
    x = data((case.n, *case.size, case.c), 1, dtype)
    w = data(case.weight_shape(), 2, dtype)
    gy = data(_forward_shape(case), 3, dtype)
    gi = cpu_problem_plan("conv3d_grad_input", gy, w, x.shape, **case.kwargs())
    gw = cpu_problem_plan("conv3d_grad_weight", x, gy, w.shape, **case.kwargs())
    tr = cpu_problem_plan("conv_transpose3d", x, w, output_padding=1, **case.kwargs())
    assert gi["path"] == tr["path"] == "dw-data"
    assert gw["path"] == "dw-weight-grad"
    row_kernel = "f64-loops" if dtype == "float64" else "f32-dwconv"
    assert gi["kernel"].startswith(row_kernel) and tr["kernel"].startswith(row_kernel)
    assert gw["kernel"] == _wgrad_loops(_core._cpu_isa())


def test_planner_keeps_grouped_convs_off_the_depthwise_paths():
    x = data((1, 4, 4, 4, 6), 4, "float32")
    w = data((6, 3, 3, 3, 2), 5, "float32")  # groups 3: two channels per group
    gy = data((1, 2, 2, 2, 6), 6, "float32")
    assert cpu_problem_plan("conv3d_grad_input", gy, w, x.shape, groups=3)["path"] == "phases"
    assert cpu_problem_plan("conv3d_grad_weight", x, gy, w.shape, groups=3)["path"] == "rows-wgrad"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_depthwise_grads_match_reference(case, dtype):
    x = data((case.n, *case.size, case.c), 7, dtype)
    w = data(case.weight_shape(), 8, dtype)
    gy = data(_forward_shape(case), 9, dtype)
    check_conv3d_grads(case, x, w, gy, dtype, "depthwise ")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_depthwise_conv_transpose3d_matches_reference(case, dtype):
    x = data((case.n, *case.size, case.c), 10, dtype)
    w = data(case.weight_shape(), 11, dtype)
    check_conv_transpose3d(case, x, w, dtype, "depthwise conv_transpose3d")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_depthwise_adjoint_identities(case):
    """<conv(x, w), g> == <x, grad_input(g, w)> == <w, grad_weight(x, g)>, for
    conv3d and for conv_transpose3d (whose weight gradient with stride 1
    along W is a flipped dw-weight-grad problem), in float64."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((case.n, *case.size, case.c))
    w = rng.standard_normal(case.weight_shape())
    y = vc.conv3d(x, w, **case.kwargs())
    g = rng.standard_normal(y.shape)
    pairs = [
        (
            y,
            g,
            vc.conv3d_grad_input(g, w, x.shape, **case.kwargs()),
            vc.conv3d_grad_weight(x, g, w.shape, **case.kwargs()),
        )
    ]
    kw = dict(case.kwargs(), output_padding=case.output_padding)
    yt = vc.conv_transpose3d(x, w, **kw)
    gt = rng.standard_normal(yt.shape)
    pairs.append(
        (
            yt,
            gt,
            _training._conv_transpose3d_grad_input(gt, w, x.shape, **kw),
            _training._conv_transpose3d_grad_weight(x, gt, w.shape, **kw),
        )
    )
    for forward, grad, gx, gw in pairs:
        assert_adjoint(forward, x, w, grad, gx, gw)


def test_conv_general_weight_grad_with_input_dilation_along_d_h():
    """Input dilation along D and H (not W) stays on dw-weight-grad: the rows
    of inserted zeros are skipped. Checked by the adjoint identity."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 4, 7, 5))
    w = rng.standard_normal((5, 3, 2, 3, 1))
    kw = dict(stride=(1, 2, 1), padding=((1, 0, 1), (2, 1, 0)), input_dilation=(2, 3, 1), groups=5, flip=True)
    y = vc.conv_general(x, w, **kw)
    g = rng.standard_normal(y.shape)
    gw = _training._conv_general_grad_weight(x, g, w.shape, **kw)
    lhs = dot(y, g)
    assert abs(lhs - dot(w, gw)) <= 1e-11 * (float(np.sum(np.abs(y) * np.abs(g))) + 1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_depthwise_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = data((case.n, *case.size, case.c), 14, dtype)
    w = data(case.weight_shape(), 15, dtype)
    gy_nd, torch_gx, torch_gw = torch_conv3d_grads(torch, x, w, case, case.c, 16, dtype)
    rk = case.ref_kwargs()
    gx = vc.conv3d_grad_input(gy_nd, w, x.shape, **case.kwargs())
    gw = vc.conv3d_grad_weight(x, gy_nd, w.shape, **case.kwargs())
    assert_grads_close_to_torch(case, x, w, gy_nd, gx, gw, torch_gx, torch_gw, dtype)
    if case.pad_lo == case.pad_hi:  # F.conv_transpose3d: symmetric padding only
        # depthwise: torch's (C, 1, K...) weight is ours with the last axis first
        yt = F.conv_transpose3d(
            torch.from_numpy(x).permute(0, 4, 1, 2, 3),
            torch.from_numpy(w).permute(0, 4, 1, 2, 3),
            stride=case.stride,
            padding=case.pad_lo,
            output_padding=case.output_padding,
            groups=case.c,
            dilation=case.dilation,
        )
        ours = vc.conv_transpose3d(x, w, output_padding=case.output_padding, **case.kwargs())
        rk = dict(rk, output_padding=case.output_padding)
        scale = conv_transpose3d_reference(np.abs(f64(x)), np.abs(f64(w)), **rk)
        assert_close(ours, f64(yt.permute(0, 2, 3, 4, 1)), 2 * scale, dtype, "conv_transpose3d vs torch")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_depthwise_bits_independent_of_threads(dtype):
    case = CASES[2]
    x = data((case.n, *case.size, case.c), 17, dtype)
    w = data(case.weight_shape(), 18, dtype)
    gy = data(_forward_shape(case), 19, dtype)
    before = vc.get_num_threads()
    try:
        results, blocks, granted = [], [], []
        for n in (1, 2, 3, 5):
            vc.set_num_threads(n)
            granted.append(vc.get_num_threads())
            blocks.append(
                cpu_problem_plan("conv3d_grad_weight", x, gy, w.shape, **case.kwargs())["channel_block"]
            )
            results.append(
                (
                    vc.conv3d_grad_weight(x, gy, w.shape, **case.kwargs()),
                    vc.conv3d_grad_input(gy, w, x.shape, **case.kwargs()),
                )
            )
    finally:
        vc.set_num_threads(before)
    # The weight gradient's work items take 32 channels at 1-3 threads and 16
    # at 5 (two items a thread), so the bits below are compared across both
    # blocks wherever the machine grants 5 threads (4 a CPU at most).
    assert blocks[:3] == [32, 32, 32], blocks
    if granted[3] == 5:
        assert blocks[3] == 16, blocks
    for r in results[1:]:
        for a, b in zip(results[0], r):
            assert a.tobytes() == b.tobytes()


def test_depthwise_weight_gradient_channel_blocks():
    """Work items of 64 or 32 channels where the 8 parts x blocks still give
    each thread two, else 16; never past the channels rounded up to 16."""
    before = vc.get_num_threads()
    expected = {
        (8, 1): 16,
        (17, 1): 32,
        (40, 2): 48,
        (64, 2): 64,
        (64, 4): 64,
        (64, 8): 32,
        (300, 8): 64,
        (20, 8): 16,
    }
    try:
        for (channels, threads), block in expected.items():
            vc.set_num_threads(threads)
            if vc.get_num_threads() != threads:  # 4 threads a CPU at most
                continue
            x = np.zeros((1, 3, 4, 5, channels), np.float32)
            plan = cpu_problem_plan(
                "conv3d_grad_weight", x, x, (channels, 3, 3, 3, 1), padding=1, groups=channels
            )
            assert plan["path"] == "dw-weight-grad"
            assert plan["channel_block"] == block, (channels, threads, plan)
    finally:
        vc.set_num_threads(before)


def test_depthwise_input_gradient_takes_the_forwards_channel_block():
    """conv3d_grad_input's depthwise rows call the kernel on the forward's
    channel block where its one W phase runs the W-blocked tiles (stride 1,
    window 3); at stride 2 (two W phases of one and two taps) the kernel's NR."""
    w = np.zeros((96, 3, 3, 3, 1), np.float32)
    forward = cpu_plan(np.zeros((1, 3, 4, 10, 96), np.float32), w, padding=1, groups=96)["nr"]
    kernel_nr = cpu_plan(np.zeros((1, 3, 4, 10, 96), np.float32), w, stride=(1, 1, 2), padding=1, groups=96)[
        "nr"
    ]
    assert forward > kernel_nr or forward == 64  # AVX-512's NR is 64 already
    for stride, block in ((1, forward), (2, kernel_nr)):
        gy = np.zeros((1, 3, 4, 10 // stride, 96), np.float32)
        plan = cpu_problem_plan(
            "conv3d_grad_input", gy, w, (1, 3, 4, 10, 96), stride=(1, 1, stride), padding=1, groups=96
        )
        assert plan["path"] == "dw-data" and plan["channel_block"] == block, (stride, plan)


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512f", "avx512bf16"])
def test_depthwise_paths_on_each_isa(isa):
    if isa not in _core._cpu_supported_isas():
        pytest.skip(f"this CPU has no {isa}")
    case = CASES[0]  # 17 channels: full vectors and a masked tail on either ISA
    x = data((case.n, *case.size, case.c), 20, "float32")
    w = data(case.weight_shape(), 21, "float32")
    gy = data(_forward_shape(case), 22, "float32")
    _core._cpu_force_isa(isa)
    try:
        plan = cpu_problem_plan("conv3d_grad_weight", x, gy, w.shape, **case.kwargs())
        assert plan["kernel"] == _wgrad_loops(isa)
        gx = vc.conv3d_grad_input(gy, w, x.shape, **case.kwargs())
        gw = vc.conv3d_grad_weight(x, gy, w.shape, **case.kwargs())
    finally:
        _core._cpu_force_isa("")
    rk = case.ref_kwargs()
    ref = conv3d_grad_input_reference(f64(gy), f64(w), x.shape, **rk)
    scale = conv3d_grad_input_reference(np.abs(f64(gy)), np.abs(f64(w)), x.shape, **rk)
    assert_close(gx, ref, scale, "float32", f"grad_input on {isa}")
    ref = conv3d_grad_weight_reference(f64(x), f64(gy), w.shape, **rk)
    scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy)), w.shape, **rk)
    assert_close(gw, ref, scale, "float32", f"grad_weight on {isa}")


@pytest.mark.parametrize("stride", [1, 2])
def test_issue_shape_matches_torch(stride):
    """The issue's shape, 1x16x56x56x64 depthwise k3 p1, with D cut to 4 (the
    H x W rows are what the kernels see), in float32 against PyTorch."""
    torch = pytest.importorskip("torch")
    x = data((1, 4, 56, 56, 64), 23, "float32")
    w = data((64, 3, 3, 3, 1), 24, "float32")
    kw = dict(stride=stride, padding=1, groups=64)
    gy = data(vc.conv3d(x, w, **kw).shape, 25, "float32")
    t = lambda a: torch.from_numpy(a).permute(0, 4, 1, 2, 3)  # noqa: E731
    gx_t, gw_t, _ = torch.ops.aten.convolution_backward(
        t(gy), t(x), t(w), None, [stride] * 3, [1] * 3, [1] * 3, False, [0] * 3, 64, [True, True, False]
    )
    gx = vc.conv3d_grad_input(gy, w, x.shape, **kw)
    gw = vc.conv3d_grad_weight(x, gy, w.shape, **kw)
    np.testing.assert_allclose(gx, gx_t.permute(0, 2, 3, 4, 1).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, gw_t.permute(0, 2, 3, 4, 1).numpy(), rtol=1e-4, atol=2e-2)
