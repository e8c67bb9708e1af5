"""The CPU's Winograd F(2x2x2, 3x3x3) path (csrc/cpu/conv3d_winograd.cpp), on
every kernel set this machine runs: which calls the planner gives it, its
results against float64 "pad with the mode, convolve, bias, activate, add
the residual", partial tiles along each axis, groups, channel tails, thread
counts, and inf / NaN (handed to the direct path, so they land where torch
puts them)."""

from __future__ import annotations

import numpy as np
import pytest
from test_epilogue import activate
from test_padding_modes import pad_numpy

import volconv
from volconv import _core

from cases import _c
from conftest import cpu_plan
from reference import TOLERANCE, assert_within, conv3d_reference


@pytest.fixture
def isa(every_isa):
    return every_isa


def operands(case, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, case.input).astype(np.float32)
    w = rng.uniform(-1, 1, case.weight_shape).astype(np.float32)
    return x, w


def expected(x, w, case, mode="zeros", bias=None, activation=None, residual=None):
    """float64: pad with the mode, convolve, + bias, activate, + residual;
    and the per-element scale of what carries rounding."""
    xp = pad_numpy(x, case.pad_lo, case.pad_hi, mode)
    w64 = np.asarray(w, np.float64)
    ref = conv3d_reference(xp, w64, groups=case.groups)
    scale = conv3d_reference(np.abs(xp), np.abs(w64), groups=case.groups)
    if bias is not None:
        ref, scale = ref + bias, scale + np.abs(bias)
    ref, scale = activate(ref, activation), 1.2 * scale
    if residual is not None:
        ref, scale = ref + residual, scale + np.abs(residual)
    return ref, scale + np.abs(ref)


def plan_of(x, w, case, mode="zeros"):
    return cpu_plan(x, w, padding=(case.pad_lo, case.pad_hi), groups=case.groups, padding_mode=mode)


# Odd output sizes (a last tile half outside along D, H or W), N > 1,
# asymmetric padding, channel counts off every vector width, groups.
CASES = [
    _c("even", 1, 4, 6, 8, 16, 16, 3, p=1),
    _c("odd_dhw", 2, 5, 7, 9, 16, 24, 3, p=1),
    _c("no_pad_odd", 1, 7, 6, 9, 20, 17, 3),
    _c("asym", 1, 5, 6, 7, 17, 33, 3, p=((2, 0, 1), (0, 2, 1))),
    _c("groups", 2, 4, 5, 6, 32, 40, 3, p=1, g=2),
    _c("wide", 1, 3, 4, 6, 64, 96, 3, p=1),
    _c("one_deep_h", 1, 6, 1, 8, 16, 16, 3, p=((1, 1, 1), (1, 1, 1))),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward(isa, case):
    x, w = operands(case)
    plan = plan_of(x, w, case)
    assert plan["path"] == "winograd", plan
    y = volconv.conv3d(x, w, padding=(case.pad_lo, case.pad_hi), groups=case.groups)
    ref, scale = expected(x, w, case)
    assert_within(y, ref, TOLERANCE["float32"] * scale + 1e-30, "float32", case.name)


MODES = ["replicate", "reflect", "circular", ("replicate", "zeros", "reflect")]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_padding_modes_and_epilogue(isa, mode):
    # Causal along D ((2, 0) with replicate), asymmetric H and W.
    case = _c("causal", 2, 5, 6, 7, 16, 20, 3, p=((2, 1, 0), (0, 1, 2)))
    x, w = operands(case, seed=1)
    rng = np.random.default_rng(2)
    bias = rng.uniform(-1, 1, case.c_out).astype(np.float32)
    out_shape = (2, 5, 6, 7, 20)
    residual = rng.uniform(-1, 1, out_shape).astype(np.float32)
    assert plan_of(x, w, case, mode)["path"] == "winograd"
    y = volconv.conv3d(
        x,
        w,
        padding=(case.pad_lo, case.pad_hi),
        padding_mode=mode,
        bias=bias,
        activation="silu",
        residual=residual,
    )
    ref, scale = expected(x, w, case, mode, bias.astype(np.float64), "silu", residual.astype(np.float64))
    assert_within(y, ref, TOLERANCE["float32"] * scale + 1e-30, "float32", str(mode))


def test_not_planned_where_it_cannot_run():
    """Stride, dilation, other kernel sizes, narrow channels, 16-bit inputs
    and outputs one deep along two axes take the direct paths."""
    x = np.zeros((1, 6, 6, 6, 16), np.float32)
    w = np.zeros((16, 3, 3, 3, 16), np.float32)
    assert cpu_plan(x, w, padding=1)["path"] == "winograd"
    assert cpu_plan(x, w, padding=1, stride=2)["path"] == "igemm"
    assert cpu_plan(x, w, padding=2, dilation=2)["path"] == "igemm"
    assert cpu_plan(x, np.zeros((16, 1, 3, 3, 16), np.float32), padding=1)["path"] == "igemm"
    assert cpu_plan(x[..., :8], w[..., :8], padding=1)["path"] == "igemm"
    assert cpu_plan(x, w[:8], padding=1)["path"] == "igemm"
    assert cpu_plan(x.astype(np.float16), w, padding=1)["path"] != "winograd"
    assert cpu_plan(x[:, :, :3, :3], w, padding=((1, 0, 0), (1, 0, 0)))["path"] == "igemm"  # Ho = Wo = 1


def test_unit_tiles(threads):
    """A work unit's transformed input fits a quarter of L2, and small
    problems are cut into about four units per thread."""
    x = np.zeros((1, 8, 8, 8, 64), np.float32)
    w = np.zeros((64, 3, 3, 3, 64), np.float32)
    l2 = _core._cpu_cache_sizes()[1]
    for n in (1, 2, 16):
        volconv.set_num_threads(n)
        plan = cpu_plan(x, w, padding=1)
        tiles, mr = plan["unit_tiles"], plan["mr"]
        assert tiles % mr == 0 and tiles >= mr
        assert tiles == mr or tiles * 64 * 64 * 4 <= max(l2, 1 << 20) // 4
        assert tiles == mr or 64 // tiles >= 4 * n, (n, tiles)  # 4x4x4 tiles


def test_same_bits_for_any_thread_count(threads):
    case = _c("threads", 2, 6, 7, 8, 24, 40, 3, p=1)
    x, w = operands(case, seed=4)
    results = []
    for n in (1, 2, 3):
        volconv.set_num_threads(n)
        results.append(np.asarray(volconv.conv3d(x, w, padding=1)))
    assert all(np.array_equal(results[0], r) for r in results[1:])


def direct_result(x, w, **kw):
    volconv.set_cpu_winograd(False)
    try:
        return np.asarray(volconv.conv3d(x, w, **kw))
    finally:
        volconv.set_cpu_winograd(True)


@pytest.mark.parametrize(
    "where",
    ["input_nan", "input_inf", "weight_nan", "input_overflow"],
)
def test_nonfinite_goes_to_the_direct_path(isa, where):
    """An inf / NaN would spread over a whole 2x2x2 tile (and sums of large
    finite values could overflow in the transforms): the call is recomputed
    by the direct path, so the result is the direct path's, bit for bit, and
    the non-finite outputs are those of the float64 reference."""
    case = _c("nf", 1, 6, 6, 6, 16, 16, 3, p=1)
    x, w = operands(case, seed=5)
    if where == "input_nan":
        x[0, 2, 3, 1, 5] = np.nan
    elif where == "input_inf":
        x[0, 4, 0, 5, 0] = np.inf
    elif where == "weight_nan":
        w[3, 1, 1, 1, 2] = np.nan
    else:
        # W = 0 and 1 are d1 and d2 of the first tiles' patches: d1 + d2
        # overflows in B^T d, while every direct product and sum stays finite.
        x[0, :, :, 0:2, :] = 3e38
        w[...] = w * 1e-30
    assert plan_of(x, w, case)["path"] == "winograd"
    y = np.asarray(volconv.conv3d(x, w, padding=1))
    assert np.array_equal(y, direct_result(x, w, padding=1), equal_nan=True)
    with np.errstate(invalid="ignore", over="ignore"):
        ref = conv3d_reference(
            np.asarray(x, np.float64), np.asarray(w, np.float64), pad_lo=(1,) * 3, pad_hi=(1,) * 3
        )
    assert np.array_equal(np.isnan(y), np.isnan(ref))
    assert np.array_equal(np.isinf(y), np.isinf(ref))


def test_same_bits_for_any_unit_size(threads):
    """The L2 size (and the thread count) set how many tiles a work unit
    holds; each output's sums do not depend on it."""
    case = _c("units", 1, 16, 16, 16, 48, 24, 3, p=1)
    x, w = operands(case, seed=6)
    results, tiles = [], []
    volconv.set_num_threads(1)
    try:
        for l2 in (1 << 20, 16 << 20):
            _core._cpu_override_caches(32 << 10, l2, 8 << 20)
            tiles.append(plan_of(x, w, case)["unit_tiles"])
            results.append(np.asarray(volconv.conv3d(x, w, padding=1)))
    finally:
        _core._cpu_override_caches(0, 0, 0)
    assert tiles[0] < tiles[1], tiles  # or this checks nothing
    assert np.array_equal(results[0], results[1])


def test_switch_takes_only_a_bool():
    with pytest.raises(TypeError, match=r"\[set_cpu_winograd\] Expected enabled to be a bool, got int"):
        volconv.set_cpu_winograd(1)
    assert volconv.cpu_winograd_enabled() is True


def test_packed_handle_holds_the_transformed_weights():
    """A handle packed for a winograd call holds its transformed weights and
    the igemm panel: neither a winograd call nor a poorly filled one (igemm)
    packs per call, and both give the plain weight's bits. A NaN weight in
    the handle still sends the call to the direct plan."""
    case = _c("packed", 2, 5, 6, 7, 16, 24, 3, p=1)
    x, w = operands(case, seed=8)
    packed = volconv.pack_conv3d_weights(w, padding=1)
    small = x[:, :1, :1, :2]  # 1x1x2 outputs: too few per 2x2x2 tile
    assert plan_of(x, w, case)["path"] == "winograd"
    assert cpu_plan(small, w, padding=1)["path"] == "igemm"
    before = _core._cpu_call_packing_count()
    for xi in (x, small):
        np.testing.assert_array_equal(volconv.conv3d(xi, packed, padding=1), volconv.conv3d(xi, w, padding=1))
    assert _core._cpu_call_packing_count() == before + 2  # the two plain calls only
    w[1, 0, 2, 1, 3] = np.nan
    packed_nan = volconv.pack_conv3d_weights(w, padding=1)
    y = np.asarray(volconv.conv3d(x, packed_nan, padding=1))
    assert np.array_equal(y, direct_result(x, w, padding=1), equal_nan=True)
