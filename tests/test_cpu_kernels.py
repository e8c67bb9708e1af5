"""The CPU backend's kernels, path by path and ISA by ISA: every kernel set
this machine can run (forced through a private hook, down to the portable
fallback) on the shared CASES, on tails along W and C_out, on each special
path (small C_in, depthwise, pointwise, packed rows, float64), on strided
inputs, and across thread counts. Checked against the float64 reference in
tests/reference.py; tests/test_conv3d_parity.py covers the public API.

Which path a call takes is asked of the CPU planner (_core._cpu_plan, a
test-only binding); each test states the path its shapes are meant to reach.
tests/cpp/test_cpu_paths.cpp checks that every kernel of each ISA is reached."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import volconv
from volconv import _core

from cases import CASES, Case, _c
from conftest import ALL_ISAS, cast, cpu_plan, numpy_dtype
from reference import assert_conv_close

SUPPORTED = _core._cpu_supported_isas()


@pytest.fixture
def isa(every_isa):
    return every_isa


@pytest.fixture
def reference_caches():
    """Plans (and so execution) assume a 1 MiB L2, the size the chunking
    tests are written for, instead of this machine's; restored afterwards."""
    _core._cpu_override_caches(32 << 10, 1 << 20, 8 << 20)
    yield
    _core._cpu_override_caches(0, 0, 0)


def plan_of(x, w, case: Case) -> dict:
    """What the CPU planner runs for conv3d(x, w, **case.api_kwargs())."""
    kw = case.api_kwargs()
    return cpu_plan(
        x, w, stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"], groups=kw["groups"]
    )


def run_case(case: Case, dtype: str = "float32", seed: int = 0):
    x, w = case.inputs(seed)
    x, w = cast(x, dtype), cast(w, dtype)
    y = volconv.conv3d(x, w, **case.api_kwargs())
    return x, w, y, plan_of(x, w, case)


def check_isa(plan: dict, isa: str) -> None:
    """The forced ISA's kernels run (avx512bf16 runs avx512f's kernels for
    everything but its vdpbf16ps igemm)."""
    kernel, unit = plan["kernel"], isa.split("-")[0]  # "-2fma": another tile set of the unit
    assert (
        plan["path"] == "direct"
        or kernel.endswith(unit)
        or (unit == "avx512bf16" and kernel.endswith("avx512f"))
    ), plan


def check_path(plan: dict, intended: str, isa: str) -> None:
    """The shape reached the path it was written for; a test that silently
    fell back to another path would not test the kernel it is named after."""
    assert plan["path"] == intended, f"planned {plan['name']}, meant for {intended}"
    check_isa(plan, isa)


def bf16_pairs(isa: str) -> bool:
    """Whether the ISA has the vdpbf16ps igemm (bf16 x bf16, even C_in)."""
    return any(k.startswith("bf16-igemm") for k in _core._cpu_kernel_names()) and isa.startswith("avx512bf16")


# ---------------------------------------------------------------- every ISA


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_f32(isa, case):
    x, w, y, plan = run_case(case)
    check_isa(plan, isa)
    assert_conv_close(y, x, w, "float32", **case.params())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_low_precision(isa, case, dtype):
    x, w, y, plan = run_case(case, dtype)
    check_isa(plan, isa)
    assert y.dtype == numpy_dtype(dtype)
    assert_conv_close(y, x, w, dtype, **case.params())


# Tails: W_out not a multiple of any MR, C_out around every NR (4..64), for
# the in-place igemm (C_in 8 and 6; C_out 1: small-C_out), C_in 1 and 3 (the
# few-C_in row kernel, in every dtype) and depthwise.
TAIL_CASES = (
    [
        _c(f"tail_w{wo}_co{co}_ci{ci}", 1, 2, 2, wo, ci, co, 3, p=1)
        for wo, co in [
            (1, 1),
            (5, 15),
            (7, 17),
            (9, 31),
            (13, 33),
            (17, 47),
            (6, 49),
            (11, 63),
            (3, 65),
            (19, 80),
        ]
        for ci in (8, 6, 3, 1)
    ]
    + [
        _c(f"dw_tail_w{wo}_c{ch}", 1, 3, 3, wo, ch, ch, 3, p=1, g=ch)
        for wo, ch in [(5, 2), (7, 17), (13, 64), (6, 65), (9, 130)]
    ]
    + [
        # W-blocked tiles (stride 1, windows 3 and 5): interiors of 1 to 23
        # positions (whole blocks, halves, single positions), channel blocks
        # of vector pairs, a single vector and a partial one.
        _c(
            f"dw_wblock_w{wo}_c{ch}_k{k}",
            1,
            3,
            2,
            wo,
            ch,
            ch,
            (3, 3, k),
            p=(1, 1, k // 2),
            g=ch,
        )
        for wo, ch, k in [
            (3, 16, 3),
            (4, 48, 3),
            (10, 21, 3),
            (11, 80, 3),
            (17, 96, 3),
            (18, 40, 3),
            (25, 33, 3),
            (6, 32, 5),
            (15, 48, 5),
            (23, 19, 5),
        ]
    ]
    + [
        _c("dw_wblock_strided_dh", 1, 5, 6, 14, 32, 32, 3, s=(2, 2, 1), p=1, g=32),
        _c("dw_strided_interior", 1, 4, 6, 30, 64, 64, 3, s=(1, 1, 2), p=1, g=64),
        _c("dw_dilated_k5", 1, 5, 5, 24, 32, 32, 5, p=4, dil=2, g=32),
    ]
)


def tail_path(case: Case, dtype: str, isa: str) -> str:
    """What each tail case was written for (see the comment above)."""
    cin = case.input[4]
    if case.groups > 1:
        return "dwconv"  # one channel per group (16-bit inputs converted a row at a time)
    if cin > 4 and case.c_out == 1:
        return "small-cout"  # one output channel: the reduction in the lanes
    if cin <= 4:
        return "few-cin"  # the row kernel, a row per (kd, kh, ci)
    if dtype == "float32":
        return {8: "igemm", 6: "fold-w"}[cin]  # W folded up to C_in 7
    return "igemm" if dtype == "bfloat16" and bf16_pairs(isa) else "packed-a"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", TAIL_CASES, ids=lambda c: c.name)
def test_tails(isa, case, dtype):
    x, w, y, plan = run_case(case, dtype, seed=1)
    check_path(plan, tail_path(case, dtype, isa), isa)
    assert_conv_close(y, x, w, dtype, **case.params())


def test_depthwise_rows_take_up_to_64_channels_a_call(isa):
    """The W-blocked depthwise rows (stride 1 along W, window 3 or 5, no
    dilation) run up to 64 channels a kernel call, at least the kernel's NR
    (the tail cases above check the results: 80, 96 and 130 channels run
    as blocks of 64 and a remainder); other windows keep the kernel's NR."""

    def plan(ch, k=3, s=1, dil=1):
        x = np.zeros((1, 3, 4, 12, ch), np.float32)
        w = np.zeros((ch, 3, 3, k, 1), np.float32)
        return cpu_plan(
            x, w, stride=(1, 1, s), padding=(1, 1, dil * (k // 2)), dilation=(1, 1, dil), groups=ch
        )

    kernel_nr = plan(8, s=2)["nr"]
    assert plan(8, s=2)["path"] == "dwconv" and kernel_nr in (4, 8, 16, 64)
    for ch in (8, 21, 40, 64, 65, 130):
        assert plan(ch)["nr"] == min(-(-ch // kernel_nr) * kernel_nr, max(kernel_nr, 64)), ch
        assert plan(ch, k=5)["nr"] == plan(ch)["nr"]
    for other in (dict(k=7), dict(s=2), dict(dil=2)):
        assert plan(130, **other)["nr"] == kernel_nr, other


# The W window folded into K (C_in 5-7; fewer channels take the row kernel,
# below): windows across both W borders (pad larger than the window
# overhang, asymmetric), strides, W narrower than the window, several C_in,
# tiles spanning output rows and tails along C_out.
FOLD_W = [
    _c("fold_w_stem", 1, 3, 9, 23, 5, 20, (3, 7, 7), s=(1, 2, 2), p=(1, 3, 3)),
    _c("fold_w_k9", 2, 3, 4, 13, 6, 17, (2, 3, 9), p=(0, 1, 4)),
    _c("fold_w_asym", 1, 4, 5, 11, 7, 33, (3, 3, 5), s=(2, 1, 3), p=((1, 0, 4), (0, 2, 1))),
    _c("fold_w_narrow", 1, 2, 3, 3, 5, 9, (1, 2, 5), p=(0, 1, 2)),
    _c("fold_w_dil_dh", 1, 6, 6, 10, 6, 64, (2, 2, 3), p=1, dil=(2, 3, 1)),
]


@pytest.mark.parametrize("case", FOLD_W, ids=lambda c: c.name)
def test_fold_w(isa, case):
    x, w, y, plan = run_case(case, seed=2)
    check_path(plan, "fold-w", isa)
    assert_conv_close(y, x, w, "float32", **case.params())


# The in-place indirection groups a tile's rows into runs along one output
# row: runs broken by row, image and batch ends, W strides and dilations
# larger than the kernel, padding wider than the window, W narrower than it.
INDIRECTION = [
    _c("runs_span_rows_batches", 3, 2, 3, 5, 8, 16, 3, p=1),
    _c("runs_stride3_pad_wide", 1, 3, 4, 17, 8, 20, (2, 2, 3), s=(1, 2, 3), p=(1, 1, 4)),
    _c("runs_dilated_w", 1, 4, 5, 13, 8, 33, 3, p=(1, 1, 5), dil=(1, 2, 4)),
    _c("runs_w_narrower", 2, 3, 3, 2, 10, 17, (1, 3, 5), p=(0, 1, 3)),
    # Tiles whose every window lies inside the input take a shortcut (bases
    # plus tap offsets): dilated and strided per axis, and windows that end
    # exactly on the input's last element along each axis.
    _c("inside_dilated_strided", 1, 11, 10, 14, 8, 16, 3, s=(2, 1, 1), p=(2, 1, 0), dil=(3, 2, 1)),
    _c("inside_exact_fit", 2, 5, 6, 9, 8, 16, 3, dil=(2, 2, 1)),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", INDIRECTION, ids=lambda c: c.name)
def test_indirection_runs(isa, case, dtype):
    x, w, y, plan = run_case(case, dtype, seed=3)
    in_place = dtype == "float32" or bf16_pairs(isa)
    check_path(plan, "igemm" if in_place else "packed-a", isa)
    assert_conv_close(y, x, w, dtype, **case.params())


# Up to 4 input channels (the row kernel, C_out in the lanes, a row of taps
# per (kd, kh, ci)): W shorter and longer than the register tile, tails
# along C_out, strides, dilation, padding wider than the window (both W
# borders, asymmetric), W narrower than the window, batches; C_in 1 to 4.
FEW_CIN = [
    _c("cin1_d_like", 1, 6, 6, 33, 1, 16, 3, p=1),
    _c("cin1_cout_tails", 2, 3, 4, 29, 1, 37, 3, p=1),
    _c("cin1_narrow_w", 1, 3, 3, 2, 1, 5, 3, p=(1, 1, 2)),
    _c("cin1_strided_dilated", 1, 7, 8, 40, 1, 24, (3, 2, 3), s=(2, 1, 2), p=(1, 0, 3), dil=(1, 2, 2)),
    _c("cin1_wide_cout", 1, 3, 3, 20, 1, 70, 3, p=1),
    _c("cin1_asymmetric_pad", 1, 4, 5, 19, 1, 16, 3, p=((1, 0, 2), (0, 1, 1))),
    _c("cin2_unet_first", 2, 5, 6, 21, 2, 16, 3, p=1),
    _c("cin3_stem", 1, 3, 9, 23, 3, 20, (3, 7, 7), s=(1, 2, 2), p=(1, 3, 3)),
    _c("cin1_k9", 2, 3, 4, 13, 1, 17, (2, 3, 9), p=(0, 1, 4)),
    _c("cin2_asym", 1, 4, 5, 11, 2, 33, (3, 3, 5), s=(2, 1, 3), p=((1, 0, 4), (0, 2, 1))),
    _c("cin4_narrow", 1, 2, 3, 3, 4, 9, (1, 2, 5), p=(0, 1, 2)),
    _c("cin3_dil_dh", 1, 6, 6, 10, 3, 64, (2, 2, 3), p=1, dil=(2, 3, 1)),
    _c("cin4_cout_tails", 2, 3, 4, 17, 4, 7, 3, s=(1, 1, 2), p=1, dil=(1, 1, 2)),
]


@pytest.mark.parametrize("case", FEW_CIN, ids=lambda c: c.name)
def test_few_cin(isa, case):
    x, w, y, plan = run_case(case, seed=4)
    check_path(plan, "few-cin", isa)
    assert_conv_close(y, x, w, "float32", **case.params())


# 5-8 input channels with 5-8 output channels: the row kernel with one vector
# of output channels where the ISA has it (x86: 12x8), else W folded into
# K (the in-place igemm at C_in 8 or a W dilation). The m-like shape, W tails of every tile size, row counts not a multiple
# of the border positions' 4 partial sums (C_in 5 and 7 x 9 taps), strided
# W (the stride-addressed tile), dilation, asymmetric padding, batches.
def has_narrow_rows(isa: str) -> bool:
    """Whether the ISA's kernel set has the one-vector row kernel (x86)."""
    return isa.startswith(("avx2", "avx512"))


FEW_CIN_NARROW = [
    _c("cin5_cout7_m_like", 2, 5, 6, 29, 5, 7, 3, p=1),
    _c("cin6_cout5_short_w", 1, 3, 4, 3, 6, 5, 3, p=(1, 1, 2)),
    _c("cin7_cout8_strided", 1, 4, 5, 31, 7, 8, 3, s=(1, 2, 2), p=((1, 0, 1), (1, 1, 2))),
    _c("cin8_cout6_dilated", 2, 5, 4, 23, 8, 6, (3, 2, 3), p=(1, 1, 2), dil=(1, 2, 2)),
]


@pytest.mark.parametrize("case", FEW_CIN_NARROW, ids=lambda c: c.name)
def test_few_cin_narrow(isa, case):
    x, w, y, plan = run_case(case, seed=5)
    narrow = has_narrow_rows(isa)
    folds_w = case.input[4] <= 7 and case.dilation[2] == 1
    check_path(plan, "few-cin" if narrow else "fold-w" if folds_w else "igemm", isa)
    if narrow:
        assert plan["nr"] == 8, plan  # the narrow kernel, not the set's own one
    assert_conv_close(y, x, w, "float32", **case.params())


# The pairs kernel (two W positions a vector on channel-planar rows, W stride
# 1): up to 4 output channels on the x86 sets, up to 8 on the -2fma sets.
# W out around its tiles (16, the last of 8) and odd (a last position without
# its pair); W dilation; padding wider than the window (positions reading
# only zeros) and asymmetric; W narrower than the window; KW 1 and 7; D/H
# strides (W stride 2 keeps the narrow kernel); batches; C_in up to 8.
def pairs_nr(isa: str) -> int:
    """The output channels the ISA's pairs kernel takes (0: none)."""
    if isa.endswith("-2fma"):
        return 8
    return 4 if isa.startswith(("avx2", "avx512")) else 0


FEW_CIN_PAIRS = [
    _c("pairs_wo1", 1, 2, 3, 1, 2, 3, 3, p=1),
    _c("pairs_wo2_k1", 2, 2, 3, 2, 1, 4, (3, 3, 1), p=(1, 1, 0)),
    _c("pairs_wo7", 1, 3, 3, 7, 3, 2, 3, p=1),
    _c("pairs_wo8", 1, 3, 2, 8, 4, 1, 3, p=1),
    _c("pairs_wo9", 2, 2, 3, 9, 2, 4, 3, p=1),
    _c("pairs_wo15_k7", 1, 2, 2, 15, 3, 3, (1, 3, 7), p=(0, 1, 3)),
    _c("pairs_wo16", 1, 2, 3, 16, 1, 4, 3, p=1),
    _c("pairs_wo17", 1, 2, 3, 17, 4, 2, 3, p=1),
    _c("pairs_m_like", 2, 5, 6, 29, 5, 7, 3, p=1),
    _c("pairs_cout8", 1, 3, 4, 33, 6, 8, 3, p=1),
    _c("pairs_cout5_dil", 1, 4, 5, 23, 8, 5, 3, p=(1, 1, 4), dil=(1, 2, 3)),
    _c("pairs_wide_pad", 1, 3, 3, 5, 2, 3, 3, p=((1, 0, 5), (0, 2, 4))),
    _c("pairs_narrow_w", 1, 3, 3, 2, 3, 4, 3, p=(1, 1, 2)),
    _c("pairs_strided_dh", 2, 7, 8, 19, 3, 4, 3, s=(2, 3, 1), p=1),
    _c("pairs_w_stride2", 1, 3, 4, 21, 2, 3, 3, s=(1, 1, 2), p=1),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", FEW_CIN_PAIRS, ids=lambda c: c.name)
def test_few_cin_pairs(isa, case, dtype):
    x, w, y, plan = run_case(case, dtype, seed=7)
    cin, cout = case.input[4], case.c_out
    takes_pairs = cout <= pairs_nr(isa) and case.stride[2] == 1 and (cin <= 4 or cout > 4)
    if takes_pairs:
        check_path(plan, "few-cin", isa)
        assert "pairs" in plan["kernel"], plan
        # The kernel's contract: its last tile (positions below round_up(W_out, 16)) reads inside the row.
        wo = y.shape[3]
        assert plan["planar_row"] >= -(-wo // 16) * 16 + (case.kernel[2] - 1) * case.dilation[2], plan
        assert plan["row_slots"] >= 2 * case.kernel[0] * case.kernel[1] + 1, plan
    else:
        assert "pairs" not in plan["kernel"], plan
    assert_conv_close(y, x, w, dtype, **case.params())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_few_cin_pairs_strided_view(isa, dtype):
    # The planar copy reads the input with its W and channel strides.
    case = _c("pairs_view", 2, 3, 4, 21, 3, 4, 3, p=1)
    x, w = case.inputs(8)
    x, w = cast(x, dtype), cast(w, dtype)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3], 2 * x.shape[4]), x.dtype)
    wide[:, :, :, ::2, ::2] = x
    view = wide[:, :, :, ::2, ::2]
    y = volconv.conv3d(view, w, **case.api_kwargs())
    plan = plan_of(view, w, case)
    # (A float32 view with strided channels keeps the gathering paths.)
    if pairs_nr(isa) and dtype == "bfloat16":
        assert "pairs" in plan["kernel"], plan
    assert_conv_close(y, x, w, dtype, **case.params())


def test_pairs_row_cache_within_the_row_memory_bound(isa):
    """The planar rows are longer than the input's (W padding, the last
    tile's slack): a one-position-wide, very tall input keeps whole H
    blocks of them, so the cache's bound must count the planar length, not
    W x C_in (counting W x C_in, it came to 9.4 MB a thread here)."""
    if not pairs_nr(isa):
        pytest.skip("no pairs kernel in this kernel set")
    x = np.zeros((1, 3, 200_000, 1, 1), np.float32)
    w = np.zeros((4, 3, 3, 3, 1), np.float32)
    plan = cpu_plan(x, w, padding=1)
    assert "pairs" in plan["kernel"], plan
    cache_bytes = plan["row_slots"] * plan["planar_row"] * 1 * 4
    assert cache_bytes <= 8 << 20, plan


@pytest.mark.parametrize("cin", [1, 3])
def test_few_cin_strided_view(isa, cin):
    # The row kernel reads W with the input's stride (x_step), not C_in, and
    # each channel at the channel stride.
    case = _c("few_cin_view", 1, 3, 4, 21, cin, 16, 3, p=1)
    x, w = case.inputs(6)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3], 2 * cin), np.float32)
    wide[:, :, :, ::2, ::2] = x
    view = wide[:, :, :, ::2, ::2]
    y = volconv.conv3d(view, w, **case.api_kwargs())
    check_path(plan_of(view, w, case), "few-cin", isa)
    assert_conv_close(y, x, w, "float32", **case.params())


# Few output channels (C_out per group 1-4, C_in per group >= 8): the row
# kernel with the reduction in the lanes. Each C_out's kernel (MR differs);
# the W window one contiguous run (dilation 1, channels then W contiguous)
# and tap by tap (W dilation, W stride, a strided view); C_in tails (17, 9,
# 33 against every vector width); W shorter than the tile and the window;
# interiors of every tile size; groups; asymmetric padding; batches.
SMALL_COUT = [
    _c("small_cout1_unet_grad", 2, 3, 4, 21, 16, 1, 3, p=1),
    _c("small_cout2_u1_like", 1, 4, 4, 32, 16, 2, 3, p=1),
    _c("small_cout3_cin_tail", 1, 3, 5, 19, 17, 3, 3, p=1),
    _c("small_cout4_cin33", 1, 3, 3, 23, 33, 4, 3, p=1),
    _c("small_cout2_cin9_k5", 1, 3, 4, 14, 9, 2, (1, 3, 5), p=(0, 1, 2)),
    _c("small_cout_dilated_w", 1, 5, 5, 17, 8, 2, 3, p=(1, 1, 4), dil=(1, 2, 3)),
    _c("small_cout_strided", 2, 7, 6, 25, 12, 3, 3, s=(2, 1, 3), p=1),
    _c("small_cout_narrow_w", 1, 3, 3, 2, 16, 4, 3, p=(1, 1, 2)),
    _c("small_cout_groups", 1, 3, 4, 13, 32, 4, 3, p=1, g=2),
    _c("small_cout_groups_c1", 1, 3, 4, 11, 24, 3, 3, p=1, g=3),
    _c("small_cout_asym_pad", 1, 4, 5, 18, 16, 2, 3, p=((1, 0, 2), (0, 1, 1))),
    _c("small_cout_pointwise", 2, 3, 4, 9, 20, 1, 1),
]


@pytest.mark.parametrize("case", SMALL_COUT, ids=lambda c: c.name)
def test_small_cout(isa, case):
    x, w, y, plan = run_case(case, seed=7)
    check_path(plan, "small-cout", isa)
    assert plan["kernel"].startswith(f"f32-conv-cout{case.c_out // case.groups}-"), plan
    assert_conv_close(y, x, w, "float32", **case.params())


@pytest.mark.parametrize("cin", [6, 16])
def test_small_cout_strided_view(isa, cin):
    # W read with the input's stride (x_step 2 * C_in): the window is not one
    # run, and the result must still be its contiguous copy's, bit for bit.
    case = _c("small_cout_view", 1, 3, 4, 21, cin, 2, 3, p=1)
    x, w = case.inputs(8)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3], cin), np.float32)
    wide[:, :, :, ::2] = x
    view = wide[:, :, :, ::2]
    y = volconv.conv3d(view, w, **case.api_kwargs())
    check_path(plan_of(view, w, case), "small-cout", isa)
    np.testing.assert_array_equal(y, volconv.conv3d(x, w, **case.api_kwargs()))
    assert_conv_close(y, x, w, "float32", **case.params())


def test_small_cout_nan_neighbour_not_read(isa):
    # A C_in tail is loaded partially: the next position's channels (NaN
    # here, past the view's C_in) must never meet a zero weight lane.
    case = _c("small_cout_tail_nan", 1, 2, 3, 12, 9, 2, 3, p=1)
    x, w = case.inputs(9)
    wide = np.full(x.shape[:4] + (16,), np.nan, np.float32)
    wide[..., :9] = x
    y = volconv.conv3d(wide[..., :9], w, **case.api_kwargs())
    check_path(plan_of(wide[..., :9], w, case), "small-cout", isa)
    assert_conv_close(y, x, w, "float32", **case.params())


# The row paths with float16 / bfloat16 inputs read float32 rows, converted
# once per thread (float_rows.h). The input here is a channel slice of a
# wider array, so its positions lie further apart than its channels; the
# result is 16-bit (the row buffer rounded once at the store) or, with a
# float32 weight, float32.
ROWS_16BIT = [
    (_c("few_cin_16bit", 1, 4, 5, 13, 3, 9, 3, s=(1, 1, 2), p=1), "few-cin"),
    (_c("small_cout_16bit", 2, 3, 4, 11, 16, 3, 3, p=((1, 0, 2), (0, 1, 1))), "small-cout"),
    (_c("dwconv_16bit", 1, 3, 4, 12, 24, 24, 3, s=(1, 2, 1), p=1, g=24), "dwconv"),
]


@pytest.mark.parametrize("weight_dtype", ["same", "float32"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("case,path", ROWS_16BIT, ids=lambda v: v.name if isinstance(v, Case) else v)
def test_row_paths_16bit_inputs(isa, case, path, dtype, weight_dtype):
    x, w = case.inputs(7)
    wide = np.concatenate([x, -x[..., :5]], axis=-1)
    view = cast(wide, dtype)[..., : case.input[4]]
    assert view.strides[3] > view.strides[4] * case.input[4]
    w = cast(w, dtype if weight_dtype == "same" else "float32")
    check_path(plan_of(view, w, case), path, isa)
    y = volconv.conv3d(view, w, **case.api_kwargs())
    result = dtype if weight_dtype == "same" else "float32"
    assert y.dtype == numpy_dtype(result)
    assert_conv_close(y, view, w, result, **case.params())


def test_16bit_rows_only_where_the_row_cache_is_small():
    """A 16-bit input takes a row path only while a thread's cache of
    2 x KD x KH + 1 converted rows (W x C_in floats each) stays within 8 MiB;
    past it, the gathering path, whose buffers do not grow with W."""
    limit_w = (8 << 20) // (4 * (2 * 3 * 3 + 1))  # C_in 1, a 3x3x3 kernel
    w = np.ones((4, 3, 3, 3, 1), np.float16)
    for width, path in ((limit_w, "few-cin"), (limit_w + 1, "small-cin")):
        x = np.zeros((1, 3, 3, width, 1), np.float16)
        assert cpu_plan(x, w)["path"] == path, width


# K split into chunks (accumulate into the tile): a packed-A tile with more
# taps x C_in than its buffer holds, and a small-C_in tile likewise (1728
# taps: more than one chunk for every ISA's MR).
CHUNKED = [
    (_c("packed_a_chunks", 1, 4, 4, 5, 256, 20, 3, p=1), "packed-a"),
    (_c("small_cin_chunks", 1, 13, 13, 14, 8, 18, 12, g=2), "small-cin"),
]


@pytest.mark.parametrize("case,path", CHUNKED, ids=lambda v: v.name if isinstance(v, Case) else v)
def test_k_chunks(isa, reference_caches, case, path):
    x, w, y, plan = run_case(case, "float16")
    check_path(plan, path, isa)
    assert plan["k_chunks"] > 1
    assert_conv_close(y, x, w, "float16", **case.params())


# Weights of 2^15 elements and more are packed by every thread, in slices of
# one (group, NR block, tap) each: groups, a partial last NR block, and a
# weight view whose C_in is not its innermost stride (the slices read it
# through its strides) must land where the kernels look.
LARGE_WEIGHTS = [
    _c("grouped_cout_tail", 1, 3, 4, 6, 128, 2 * 44, (3, 3, 2), p=1, g=2),
    _c("strided_k_tail", 2, 4, 5, 5, 48, 52, (3, 3, 5), s=(1, 2, 1), p=(1, 1, 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", LARGE_WEIGHTS, ids=lambda c: c.name)
def test_large_weights_packed_on_threads(isa, case, dtype):
    assert np.prod(case.weight_shape) >= 1 << 15  # the threaded packing
    x, w = case.inputs(5)
    x, w = cast(x, dtype), cast(w, dtype)
    # The same weights with C_in outermost in memory (as a permuted view).
    w_view = np.moveaxis(np.ascontiguousarray(np.moveaxis(w, 4, 0)), 0, 4)
    assert not w_view.flags.c_contiguous
    for weight in (w, w_view):
        for threads in (1, 2):
            volconv.set_num_threads(threads)
            try:
                y = volconv.conv3d(x, weight, **case.api_kwargs())
            finally:
                volconv.set_num_threads(0)
            assert_conv_close(y, x, w, dtype, **case.params())
    in_place = dtype == "float32" or bf16_pairs(isa)
    check_path(plan_of(x, w, case), "igemm" if in_place else "packed-a", isa)


# --------------------------------------------------------- special paths


def test_pointwise_is_one_tap_gemm():
    case = _c("pw", 2, 3, 5, 7, 24, 40, 1)
    x, w, y, plan = run_case(case)
    assert plan["path"] == "igemm" and plan["kernel"].startswith("f32-igemm"), plan
    assert_conv_close(y, x, w, "float32", **case.params())


def test_bf16_kernel_on_avx512bf16():
    if "avx512bf16" not in SUPPORTED:
        pytest.skip("no avx512_bf16")
    case = _c("bf16", 1, 4, 5, 9, 32, 64, 3, p=1)
    x, w, y, plan = run_case(case, "bfloat16")
    assert plan["name"] == "igemm:bf16-igemm-6x64-avx512bf16", plan
    assert_conv_close(y, x, w, "bfloat16", **case.params())


def test_odd_cin_bf16_uses_packed_rows():
    # vdpbf16ps reads input channels in pairs; an odd C_in must not take it.
    case = _c("bf16_odd", 1, 3, 4, 5, 7, 16, 3, p=1)
    x, w, y, plan = run_case(case, "bfloat16")
    assert plan["path"] == "packed-a", plan
    assert_conv_close(y, x, w, "bfloat16", **case.params())


# The direct igemm runs every NR block per M tile when a group's panels fit
# in L2 (small K x C_out), else groups of consecutive blocks that fit in L2
# together (a partial last group, and one block per group when a panel alone
# fills the budget), the group the outer loop; all with M tails and a partial
# last block, on 1 and 3 threads (chunks that end inside a block group).
@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize(
    "case,order",
    [
        (_c("m_outer", 2, 3, 5, 7, 24, 72, 3, p=1), "all"),
        (_c("block_groups", 1, 3, 4, 5, 64, 200, 3, p=1), "some"),
        (_c("block_groups_narrow", 1, 3, 4, 5, 16, 400, 3, p=1), "some"),
        (_c("block_per_group", 1, 2, 3, 5, 320, 80, 3, p=1), "one"),
    ],
    ids=lambda v: v.name if isinstance(v, Case) else str(v),
)
def test_block_order(isa, threads, reference_caches, no_winograd, case, order, n_threads):
    volconv.set_num_threads(n_threads)
    x, w, y, plan = run_case(case)
    check_path(plan, "igemm", isa)
    blocks = -(-case.c_out // plan["nr"])
    group = plan["block_group"]
    assert plan["m_outer"] == (order == "all"), plan
    if order == "all":
        assert group == blocks and plan["k_chunks"] == 1, plan
    elif order == "one":
        assert group == 1 < blocks, plan
    else:
        assert plan["k_chunks"] == 1 and group < blocks, plan
        assert group > 1 or plan["nr"] >= 32, plan  # AVX-512's wide panels may fill the budget alone
    assert_conv_close(y, x, w, "float32", **case.params())


# Direct igemm panels far larger than L2 (taps x C_in x NR) are walked in
# chunks of taps over strips of 32 M tiles: one strip and a partial one,
# D/H padding that drops taps from some tiles' lists and every tap from the
# planes od = 0 and 4 (on one thread, plane 4's tiles reuse tile slots that
# held sums in the first strip, and must still come out zero), groups, and
# bf16 on vdpbf16ps (256 channels per group). C_out 64: with the 64-wide
# tiles of AVX-512, 128+ channels x 27 taps span several chunks; the
# narrower tiles of the other ISAs need 640 channels (panel_chunks_narrow).
WIDE_TILES = ("avx512f", "avx512bf16", "avx512f-2fma", "avx512bf16-2fma")
BF16_TILES = ("avx512bf16", "avx512bf16-2fma")
PANEL_CHUNKED = [
    (_c("panel_chunks_strips", 1, 4, 6, 9, 128, 64, 3, p=1), "float32", WIDE_TILES),
    (_c("panel_chunks_padding", 1, 1, 8, 9, 128, 64, 3, p=((3, 1, 0), (3, 2, 1))), "float32", WIDE_TILES),
    (_c("panel_chunks_groups", 1, 2, 3, 5, 512, 128, 3, p=1, g=2), "float32", WIDE_TILES),
    (_c("panel_chunks_groups", 1, 2, 3, 5, 512, 128, 3, p=1, g=2), "bfloat16", BF16_TILES),
    (_c("panel_chunks_narrow", 1, 2, 2, 4, 640, 64, 3, p=1), "float32", tuple(ALL_ISAS)),
    (_c("panel_chunks_narrow", 1, 2, 2, 4, 640, 64, 3, p=1), "bfloat16", BF16_TILES),
]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize(
    "case,dtype,isas", PANEL_CHUNKED, ids=lambda v: v.name if isinstance(v, Case) else str(v)[:8]
)
def test_panel_chunks(isa, threads, reference_caches, no_winograd, case, dtype, isas, n_threads):
    if isa not in isas:
        pytest.skip(f"{isa}'s tiles keep this panel under the chunk size (see the comment above)")
    volconv.set_num_threads(n_threads)
    x, w, y, plan = run_case(case, dtype)
    assert plan["k_chunks"] > 1
    check_path(plan, "igemm", isa)
    assert_conv_close(y, x, w, dtype, **case.params())


# Outputs of 8 MiB and more are written with non-temporal stores where the
# row is aligned and whole vectors; C_out = 264 mixes aligned and unaligned
# rows and a partial last block; depthwise and C_in = 1 write in their
# own kernels.
@pytest.mark.parametrize(
    "case,path",
    [
        (_c("stream_pw", 1, 8, 32, 33, 16, 264, 1), "igemm"),
        (_c("stream_k3", 1, 8, 32, 33, 8, 256, 3, p=1), "igemm"),
        (_c("stream_dw", 1, 8, 32, 33, 272, 272, 3, p=1, g=272), "dwconv"),
        (_c("stream_cin1", 1, 8, 32, 33, 1, 272, 3, p=1), "few-cin"),
    ],
    ids=lambda v: v.name if isinstance(v, Case) else v,
)
def test_large_output_streamed(isa, case, path):
    if isa in ("generic", "neon"):
        pytest.skip(f"the {isa} kernels have no non-temporal stores")
    x, w, y, plan = run_case(case)
    check_path(plan, path, isa)
    assert plan["stream"], plan
    assert y.nbytes >= 8 << 20
    assert_conv_close(y, x, w, "float32", **case.params())


def test_float64_stays_float64():
    case = _c("f64", 1, 3, 4, 5, 6, 7, 3, p=1)
    x, w, y, plan = run_case(case, "float64")
    assert plan["path"] == "direct" and y.dtype == np.float64
    assert_conv_close(y, x, w, "float64", **case.params())


@pytest.mark.parametrize(
    "view",
    ["channel_stride", "negative_w", "permuted", "broadcast_batch"],
)
def test_strided_inputs(isa, view):
    rng = np.random.default_rng(3)
    base = rng.uniform(-1, 1, (2, 4, 5, 6, 16)).astype(np.float32)
    if view == "channel_stride":
        x = base[..., ::2]
    elif view == "negative_w":
        x = base[:, :, :, ::-1, :8]
    elif view == "permuted":
        x = np.ascontiguousarray(base[..., :8].transpose(0, 4, 1, 2, 3)).transpose(0, 2, 3, 4, 1)
    else:
        x = np.broadcast_to(base[:1, ..., :8], (3, 4, 5, 6, 8))
    w = rng.uniform(-1, 1, (10, 3, 3, 3, 8)).astype(np.float32)
    y = volconv.conv3d(x, w, padding=1)
    assert_conv_close(y, np.array(x), w, "float32", pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


def test_plan_validates_like_conv3d():
    # The planner answers only for calls conv3d would accept.
    x = np.zeros((1, 3, 3, 3, 4), np.float32)
    w = np.zeros((2, 3, 3, 3, 5), np.float32)
    with pytest.raises(ValueError, match=r"\[conv3d\].*channels"):
        plan_of(x, w, _c("bad", 1, 3, 3, 3, 4, 2, 3))


def test_cache_override_is_restored():
    detected = _core._cpu_cache_sizes()
    assert all(size > 0 for size in detected)  # detected, or the fallback
    _core._cpu_override_caches(1, 2 << 20, 3)
    try:
        assert list(_core._cpu_cache_sizes()) == [1, 2 << 20, 3]
    finally:
        _core._cpu_override_caches(0, 0, 0)
    assert _core._cpu_cache_sizes() == detected


# --------------------------------------------------------------- threads


@pytest.mark.parametrize(
    "case",
    [CASES[2], _c("big", 2, 6, 9, 13, 16, 40, 3, p=1), TAIL_CASES[-3], FEW_CIN[1], FEW_CIN[7]],
    ids=str,
)
def test_bit_identical_across_runs_and_thread_counts(threads, case):
    x, w = case.inputs(5)
    results = {}
    for n in (1, 2, 3):
        volconv.set_num_threads(n)
        assert volconv.get_num_threads() == n
        first = volconv.conv3d(x, w, **case.api_kwargs())
        again = volconv.conv3d(x, w, **case.api_kwargs())
        assert first.tobytes() == again.tobytes(), f"{n} threads: two runs differ"
        results[n] = first
    # Each output is summed by one kernel call in a fixed order, whatever the
    # split, so the thread count does not change a bit either.
    assert results[1].tobytes() == results[2].tobytes() == results[3].tobytes()
    assert_conv_close(results[3], x, w, "float32", **case.params())


def test_more_threads_than_work(threads):
    volconv.set_num_threads(7)
    case = CASES[-1]  # a single output voxel: one work item
    x, w, y, _ = run_case(case)
    assert_conv_close(y, x, w, "float32", **case.params())


def test_set_num_threads_default(threads):
    volconv.set_num_threads(3)
    volconv.set_num_threads(0)
    assert volconv.get_num_threads() == len(os.sched_getaffinity(0))


def _python(code: str, **env) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_num_threads_env_var():
    assert _python("import volconv; print(volconv.get_num_threads())", VOLCONV_NUM_THREADS="5") == "5"


def test_isa_env_var():
    assert (
        _python("from volconv import _core; print(_core._cpu_isa())", VOLCONV_CPU_ISA="generic") == "generic"
    )


def test_force_unsupported_isa_raises():
    missing = [i for i in ALL_ISAS if i not in SUPPORTED]
    if not missing:
        pytest.skip("this CPU runs every kernel set")
    default = _core._cpu_isa()
    with pytest.raises(ValueError, match="cannot run"):
        _core._cpu_force_isa(missing[0])
    assert _core._cpu_isa() == default
