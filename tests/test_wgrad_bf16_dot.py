"""The bf16 weight gradient on vdpbf16ps (csrc/cpu/wgrad_bf16_dot.h): the
GEMM alone against float64 on pair words packed here, and the weight
gradients of bf16 operands that take the gathered GEMM against the float64
reference (reference_training.py) and torch's bf16 autograd; which loops
ran; bits independent of the thread count. Each runs on the vdpbf16ps
kernel (skipped without avx512_bf16) and on its portable emulation (same
sums, same order), so a CPU without AVX512_BF16 still tests the driver's
pair packing.

Tolerances, from the rounding (u = 2^-24, float32's unit roundoff):
- the GEMM: each product of two bf16 values is exact in float32 and
  vdpbf16ps adds each one to the lane with one rounding (and reads bf16
  denormals as zero: the data here has none), so c0 + a sum of K products
  is within K * u * (|c0| + sum |products|) of the exact value;
- a weight gradient: K positions plus the 8 partial sums' additions, then
  one rounding to bf16 (2^-8 relative): |r - ref| <= 2^-8 |ref| +
  (1 + 2^-8) (K + 8) u S, S the reference on absolute values.
- against torch: torch's bf16 CPU convolution keeps bf16 partial sums on
  some paths (2.5e-3 S off the float64 reference on a Zen 4 without AMX),
  so it is held to the suite's bf16 tolerance (reference_training's
  assert_close, twice 8e-3 S); the float64 reference is the tight check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference_training import assert_close, conv3d_grad_weight_reference
from training_checks import data, f64

import volconv as vc
from volconv import _core, _training

from conftest import cpu_problem_plan
from reference import assert_within

ml_dtypes = pytest.importorskip("ml_dtypes")

U = 2.0**-24
PARTS = 8  # kWeightGradParts (csrc/cpu/conv_problem_cpu.h)
DOT_KERNEL = "bf16-wgrad-dot-6x64-avx512bf16"
EMULATED = "bf16-wgrad-dot-emulated"
NO_BF16 = "this CPU has no avx512_bf16: the vdpbf16ps GEMM cannot run here"


def has_bf16_dot():
    return "avx512bf16" in _core._cpu_supported_isas()


@pytest.fixture(params=["vdpbf16ps", "emulated"])
def dot_kernel(request):
    """The dot GEMM's name, forced for the test: the vdpbf16ps kernel under
    the avx512bf16 set (skipped without it; taken whatever the speed
    measurement says) or the emulation on this CPU's own set."""
    if request.param == "vdpbf16ps":
        if not has_bf16_dot():
            pytest.skip(NO_BF16)
        _core._cpu_force_isa("avx512bf16")
    _core._cpu_wgrad_bf16_dot_mode(request.param)
    yield DOT_KERNEL if request.param == "vdpbf16ps" else EMULATED
    _core._cpu_force_isa("")
    _core._cpu_wgrad_bf16_dot_mode("auto")


def bf16_bits(a):
    return np.asarray(a, dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)


def pair_words(bits):
    """(P, cols) bf16 bits -> (ceil(P / 2), cols) words: position 2q in the
    low half, 2q + 1 in the high half, a zero high half after an odd P."""
    if bits.shape[0] % 2:
        bits = np.concatenate([bits, np.zeros((1, bits.shape[1]), np.uint16)])
    lo, hi = bits[0::2].astype(np.uint32), bits[1::2].astype(np.uint32)
    return np.ascontiguousarray(lo | (hi << 16))


# (positions, m rows of c, n columns, extra columns of g / x / c beyond m / n):
# odd counts (a half-zero last pair), every tile width (64, 32, 16, masked)
# and leftover row count (m = 17: 6 + 6 + 5).
GEMM_CASES = [
    (1, 1, 1, 3),
    (7, 3, 17, 5),
    (33, 17, 113, 2),
    (40, 6, 64, 0),
    (9, 7, 48, 16),
    (64, 12, 200, 1),
]


@pytest.mark.parametrize("case", GEMM_CASES, ids=lambda c: "p{}_m{}_n{}_pad{}".format(*c))
def test_dot_gemm_matches_float64(case, dot_kernel):
    npos, m, n, extra = case
    rng = np.random.default_rng(npos * 1000 + m * 10 + n)
    g = bf16_bits(rng.standard_normal((npos, m + extra)))
    x = bf16_bits(rng.standard_normal((npos, n + extra)))
    c = rng.standard_normal((m + extra, n + extra)).astype(np.float32)
    before = c.copy()
    assert _core._cpu_wgrad_bf16_dot(pair_words(g), pair_words(x), c, m, n)
    gv = f64(g.view(ml_dtypes.bfloat16))[:, :m]
    xv = f64(x.view(ml_dtypes.bfloat16))[:, :n]
    ref = f64(before[:m, :n]) + gv.T @ xv
    scale = np.abs(f64(before[:m, :n])) + np.abs(gv).T @ np.abs(xv)
    assert_within(c[:m, :n], ref, npos * U * scale + 1e-30, "float32", f"bf16 dot GEMM {case}")
    # outside c[:m, :n] nothing is written (rows ldc apart, masked columns)
    assert c[m:].tobytes() == before[m:].tobytes()
    assert c[:, n:].tobytes() == before[:, n:].tobytes()


def dilate(x, idil):
    """Inserts idil - 1 zeros between the input's elements along D, H, W."""
    n, d, h, w, c = x.shape
    out = np.zeros((n, (d - 1) * idil[0] + 1, (h - 1) * idil[1] + 1, (w - 1) * idil[2] + 1, c))
    out[:, :: idil[0], :: idil[1], :: idil[2]] = x
    return out


def t3(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


# (name, input shape, C_out, kernel, keywords): each takes the gathered GEMM
# (C_in / groups above 32 for conv3d; input dilation along W for
# conv_general, with C_in / groups 1, 3, 17). N > 1, groups, stride 2, C_out
# 1 / 3 / 17, and odd position counts (120 / 8 = 15 positions per part).
CASES = [
    ("c40_cout3_n2", (2, 3, 4, 5, 40), 3, 3, dict(padding=1)),
    ("c72_cout17_s2", (1, 5, 6, 7, 72), 17, 3, dict(stride=2, padding=1)),
    ("c96_g2_cout6", (2, 4, 4, 5, 96), 6, 3, dict(groups=2, padding=1)),
    ("c48_cout1", (1, 4, 5, 5, 48), 1, 2, dict(stride=(1, 2, 1))),
    ("cin1_cout3_idil", (2, 3, 4, 5, 1), 3, 3, dict(input_dilation=(1, 1, 2), padding=1)),
    ("cin3_cout17_idil_s2", (1, 4, 3, 5, 3), 17, 3, dict(input_dilation=(2, 1, 2), stride=2, padding=1)),
    ("cin17_g2_idil", (2, 3, 4, 4, 34), 6, 2, dict(input_dilation=(1, 2, 2), groups=2)),
    ("cin17_cout1_idil3", (1, 3, 5, 4, 17), 1, 3, dict(input_dilation=(1, 1, 3), padding=2)),
]


def run_case(case, seed):
    """(x, gy, our bf16 weight gradient, the loops that ran, the float64
    reference, the reference on absolute values, positions K)."""
    name, shape, cout, k, kw = case
    groups = kw.get("groups", 1)
    wshape = (cout, *t3(k), shape[4] // groups)
    x = data(shape, seed, "bfloat16")
    w = data(wshape, seed + 1, "bfloat16")
    idil = t3(kw.get("input_dilation", 1))
    if "input_dilation" in kw:
        gy = data(vc.conv_general(x, w, **kw).shape, seed + 2, "bfloat16")
        gw = _training._conv_general_grad_weight(x, gy, wshape, **kw)
    else:
        gy = data(vc.conv3d(x, w, **kw).shape, seed + 2, "bfloat16")
        gw = vc.conv3d_grad_weight(x, gy, wshape, **kw)
    ran = _core._cpu_last_wgrad_kernel()
    p = t3(kw.get("padding", 0))
    rk = dict(stride=t3(kw.get("stride", 1)), pad_lo=p, pad_hi=p, groups=groups)
    xd = dilate(f64(x), idil)
    ref = conv3d_grad_weight_reference(xd, f64(gy), wshape, **rk)
    scale = conv3d_grad_weight_reference(np.abs(xd), np.abs(f64(gy)), wshape, **rk)
    return x, gy, gw, ran, ref, scale, math.prod(gy.shape[:4])


def bound(ref, scale, positions):
    return 2.0**-8 * np.abs(ref) + (1 + 2.0**-8) * (positions + PARTS) * U * scale + 1e-30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_bf16_grad_weight_matches_float64(case, dot_kernel):
    x, gy, gw, ran, ref, scale, positions = run_case(case, 100)
    assert gw.dtype == ml_dtypes.bfloat16
    assert ran == dot_kernel
    assert_within(gw, ref, bound(ref, scale, positions), "bfloat16", f"bf16 grad_weight {case[0]} ({ran})")


def test_conv3d_cases_take_the_gathered_gemm(dot_kernel):
    """The planner reports the dot GEMM the call runs."""
    for name, shape, cout, k, kw in CASES:
        if "input_dilation" in kw:
            continue  # conv_general's plan is not asked for; the loops' name says it
        wshape = (cout, *t3(k), shape[4] // kw.get("groups", 1))
        x = data(shape, 1, "bfloat16")
        gy = data(vc.conv3d(x, data(wshape, 2, "bfloat16"), **kw).shape, 3, "bfloat16")
        plan = cpu_problem_plan("conv3d_grad_weight", x, gy, wshape, **kw)
        assert (plan["path"], plan["kernel"]) == ("gemm-wgrad", dot_kernel), name
        vc.conv3d_grad_weight(x, gy, wshape, **kw)
        assert _core._cpu_last_wgrad_kernel() == plan["kernel"], name
    # float32 operands, or a depthwise problem, keep the float32 loops in both
    x = data((1, 3, 4, 9, 8), 4, "bfloat16")
    for xs, ws, groups in [(x.astype(np.float32), (8, 3, 3, 3, 8), 1), (x, (8, 3, 3, 3, 1), 8)]:
        gy = data((1, 3, 4, 9, 8), 5, "bfloat16")
        plan = cpu_problem_plan("conv3d_grad_weight", xs, gy, ws, padding=1, groups=groups)
        assert plan["kernel"].startswith("wgrad-"), plan


def test_other_dtypes_keep_the_float_loops():
    """Only bf16 with bf16 may take the dot GEMM: float32 and a bf16 / float32
    mix keep the float32 loops; so does a forced kernel set without
    avx512_bf16. With it, bf16 takes the dot exactly where vdpbf16ps
    measured at least 1.25x the FMA flop rate (wgrad_bf16_choice.cpp)."""
    x = data((1, 3, 3, 4, 40), 5, "bfloat16")
    gy = data((1, 3, 3, 4, 6), 6, "bfloat16")
    vc.conv3d_grad_weight(x, gy.astype(np.float32), (6, 1, 1, 1, 40))
    assert _core._cpu_last_wgrad_kernel().startswith("wgrad-")
    vc.conv3d_grad_weight(x.astype(np.float32), gy.astype(np.float32), (6, 1, 1, 1, 40))
    assert _core._cpu_last_wgrad_kernel().startswith("wgrad-")
    vc.conv3d_grad_weight(x, gy, (6, 1, 1, 1, 40))
    ratio = _core._cpu_wgrad_bf16_dot_speed_ratio()
    unit = _core._cpu_isa().split("-")[0]  # "-2fma": another tile set of the unit
    if unit != "avx512bf16":
        assert ratio == 0.0
        assert _core._cpu_last_wgrad_kernel() == "wgrad-" + unit
        pytest.skip(NO_BF16)
    assert ratio > 0.0
    expected = DOT_KERNEL if ratio >= 1.25 else "wgrad-avx512f"
    assert _core._cpu_last_wgrad_kernel() == expected, ratio
    _core._cpu_force_isa("avx512f")
    try:
        assert _core._cpu_wgrad_bf16_dot_speed_ratio() == 0.0
        vc.conv3d_grad_weight(x, gy, (6, 1, 1, 1, 40))
        assert _core._cpu_last_wgrad_kernel() == "wgrad-avx512f"
    finally:
        _core._cpu_force_isa("")


@pytest.mark.parametrize("case", [c for c in CASES if "input_dilation" not in c[4]], ids=lambda c: c[0])
def test_bf16_grad_weight_matches_torch_autograd(case, dot_kernel):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, gy, gw, ran, ref, scale, positions = run_case(case, 200)
    assert ran == dot_kernel
    name, shape, cout, k, kw = case
    w = data((cout, *t3(k), shape[4] // kw.get("groups", 1)), 201, "bfloat16")

    def to_torch(a):  # NDHWC bf16 -> NCDHW torch bf16 (exact: bf16 -> float32 -> bf16)
        return torch.from_numpy(np.ascontiguousarray(f64(a).astype(np.float32))).to(torch.bfloat16)

    xt = to_torch(x).permute(0, 4, 1, 2, 3)
    wt = to_torch(w).permute(0, 4, 1, 2, 3).requires_grad_()
    y = F.conv3d(xt, wt, stride=kw.get("stride", 1), padding=kw.get("padding", 0), groups=kw.get("groups", 1))
    y.backward(to_torch(gy).permute(0, 4, 1, 2, 3))
    theirs = f64(wt.grad.permute(0, 2, 3, 4, 1).float().numpy())
    assert_close(gw, theirs, 2 * scale, "bfloat16", f"bf16 grad_weight vs torch {name} ({ran})")


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[5]], ids=lambda c: c[0])
def test_bf16_grad_weight_bits_independent_of_threads(case, dot_kernel, threads):
    results = []
    for n in (1, 2, 3, 16):
        vc.set_num_threads(n)
        _, _, gw, ran, *_ = run_case(case, 300)
        results.append((gw.tobytes(), ran))
    assert results[0][1] == dot_kernel
    assert all(r == results[0] for r in results[1:]), [r[1] for r in results]
