"""The Metal kernels (metal/*.metal), run through the MSL emulator
(tests/emulator) exactly as the planner plans them, against the float64
reference; plus the planner's own contract and the emulator's self-checks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator

from cases import CASES, _c
from conftest import cast, require_emulator
from reference import assert_conv_close

pytestmark = pytest.mark.metal_emulated
require_emulator()

DTYPES = ["float32", "float16", "bfloat16"]

# Shapes that reach every planner branch and every tail the shared sweep
# does not: small-C_in rows (Wo >= 16), each GEMM tile, N tiles with groups,
# pointwise with padding, depthwise channel tails and fallbacks.
METAL_CASES = [
    _c("small_cin_1", 1, 4, 6, 20, 1, 16, 3, p=1),
    _c("small_cin_stem", 1, 3, 8, 40, 3, 24, (3, 7, 7), s=(1, 2, 2), p=(1, 3, 3)),
    _c("small_cin_4_cout70", 1, 3, 4, 18, 4, 70, 3, p=1),
    _c("small_cin_2_dilation_wtail", 2, 4, 5, 33, 2, 9, 3, p=(1, 2, 3), dil=(1, 2, 3)),
    _c("small_cin_groups", 1, 3, 4, 24, 8, 12, 3, p=1, g=2),
    _c("small_cin_asym_stride", 1, 5, 5, 40, 1, 5, 3, s=(2, 1, 2), p=((1, 0, 1), (0, 2, 0))),
    _c("small_cin_wide_stride", 1, 2, 3, 70, 3, 33, (1, 2, 3), s=(1, 1, 4), p=(0, 1, 1)),
    _c("gemm_64x64_ntail", 1, 3, 5, 6, 16, 48, 3, p=1),
    _c("gemm_64x32", 1, 4, 4, 5, 12, 24, 3, p=1),
    _c("gemm_64x16_scalar", 1, 4, 4, 5, 5, 13, 3, p=1),
    _c("gemm_32x32_two_ntiles", 1, 2, 2, 3, 8, 40, 2),
    _c("gemm_groups_ntiles", 1, 3, 4, 5, 16, 80, 3, p=1, g=2),
    _c("gemm_groups_scalar", 2, 3, 3, 4, 6, 9, (1, 3, 3), p=(0, 1, 1), g=3),
    _c("gemm_m_tails", 1, 5, 7, 9, 6, 10, 3, p=1),
    _c("gemm_batch3_tail", 3, 2, 3, 5, 4, 8, 3, p=1),
    _c("gemm_stride_dilation", 1, 9, 9, 9, 4, 4, 3, s=2, p=2, dil=2),
    _c("gemm_k_tail_cin20", 1, 3, 3, 3, 20, 8, (1, 2, 3), p=(0, 1, 1)),
    _c("gemm_short_rows_cin2", 2, 5, 6, 7, 2, 20, 3, p=1),
    _c("pointwise_64x64", 2, 3, 4, 5, 32, 96, 1),
    _c("pointwise_stride_pad", 1, 5, 5, 5, 8, 8, 1, s=2, p=1),
    _c("pointwise_groups", 1, 3, 3, 3, 12, 6, 1, g=3),
    _c("pointwise_cin3", 1, 4, 5, 6, 3, 17, 1),
    _c("depthwise_channel_tail", 1, 3, 4, 5, 36, 36, 3, s=(1, 2, 1), p=1, g=36),
    _c("depthwise_mult2", 2, 4, 4, 4, 3, 6, 3, p=1, g=3),
    _c("depthwise_dilation", 1, 7, 7, 7, 8, 8, 3, p=2, dil=2, g=8),
    _c("depthwise_k5", 1, 5, 5, 6, 4, 4, 5, p=2, g=4),
    _c("depthwise_k1", 1, 3, 3, 3, 8, 8, 1, g=8),
    _c("depthwise_k7_falls_back", 1, 7, 7, 8, 4, 4, 7, p=3, g=4),
    _c("grouped_cin2_cout3", 1, 4, 4, 4, 4, 6, 3, p=1, g=2),
    _c("asym_pad_big_lo", 1, 4, 5, 6, 4, 8, 3, p=((2, 0, 3), (0, 2, 0))),
    _c("single_output_big_kernel", 1, 4, 4, 4, 8, 8, 4),
    _c("tiny_cout_wide_cin", 1, 3, 3, 3, 64, 2, 3, p=1),
    _c("n2_long_rows", 2, 2, 2, 19, 4, 8, 3, p=1),
    _c("cin5_k2_stride3", 1, 7, 7, 7, 5, 7, 2, s=3),
    _c("odd_all_dims_k3", 1, 3, 5, 7, 3, 3, (3, 1, 2), p=((1, 0, 1), (1, 0, 0))),
    _c("gemm_64x16_vec4", 1, 3, 4, 5, 4, 12, 3, p=1),
    _c("gemm_64x64_scalar", 1, 3, 4, 5, 3, 40, 3, p=1),
    _c("pointwise_64x16_scalar", 1, 4, 4, 5, 6, 10, 1),
    _c("pointwise_64x32_vec4", 1, 4, 4, 5, 8, 20, 1),
    _c("pointwise_64x64_scalar", 1, 4, 4, 5, 5, 33, 1),
    _c("small_cin_4_cout20", 1, 2, 3, 17, 4, 20, 3, p=1),
]

ALL_CASES = CASES + METAL_CASES

# Cases that, with the 64-bit "_large" kernels forced, run every one of them
# (test_every_instantiation_is_exercised checks that they still do). The
# _large kernels differ from the 32-bit ones only in their index type, so a
# covering subset keeps CI time down.
LARGE_INDEX_CASES = [
    c
    for c in ALL_CASES
    if c.name
    in {
        "pointwise", "pointwise_odd_channels", "k3_p1", "k3_valid", "k2", "k4_p2", "stride2", "depthwise",
        "depthwise_multiplier", "cin4", "single_voxel", "small_cin_1", "small_cin_stem", "small_cin_4_cout70",
        "small_cin_groups", "small_cin_wide_stride", "gemm_64x32", "gemm_short_rows_cin2", "pointwise_64x64",
        "pointwise_stride_pad", "pointwise_groups", "pointwise_cin3", "gemm_64x16_vec4", "gemm_64x64_scalar",
        "pointwise_64x16_scalar", "pointwise_64x32_vec4", "pointwise_64x64_scalar", "small_cin_4_cout20",
    }
]  # fmt: skip


@pytest.fixture(scope="module")
def emu() -> msl_emulator.Emulator:
    return msl_emulator.load_or_skip()


@pytest.fixture
def forced_64bit_index(emu):
    """The planner takes the 64-bit "_large" kernels for the test's plans."""
    emu.force_64bit_index(True)
    yield
    emu.force_64bit_index(False)


def case_named(name: str):
    return next(c for c in ALL_CASES if c.name == name)


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """The values the kernel really sees after conversion to dtype (rounded
    by ml_dtypes/numpy, independently of the emulator's own conversion)."""
    return cast(a, dtype).astype(np.float64)


def check_case(emu, case, dtype):
    x, w = case.inputs()
    y, _ = emu.conv3d(x, w, dtype, **case.params())
    assert_conv_close(y, rounded(x, dtype), rounded(w, dtype), dtype, **case.params())


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_parity(emu, case, dtype):
    assert emu.plan(case.input, case.weight_shape, dtype, **case.params())["index_bits"] == 32
    check_case(emu, case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LARGE_INDEX_CASES, ids=[c.name for c in LARGE_INDEX_CASES])
def test_parity_64bit_index(emu, case, dtype, forced_64bit_index):
    plan = emu.plan(case.input, case.weight_shape, dtype, **case.params())
    assert plan["index_bits"] == 64 and plan["kernel"].endswith("_large")
    check_case(emu, case, dtype)


def test_metal_cases_reach_every_family(emu):
    families = {
        emu.plan(c.input, c.weight_shape, d, **c.params())["family"] for c in ALL_CASES for d in DTYPES
    }
    assert families == {"gemm", "pointwise", "small_cin", "depthwise"}


def test_every_instantiation_is_exercised(emu):
    """Each kernel the planner can pick (all tiles, both vector widths, both
    index widths, each dtype) runs in the parity suite above."""
    used = {emu.plan(c.input, c.weight_shape, d, **c.params())["kernel"] for c in ALL_CASES for d in DTYPES}
    emu.force_64bit_index(True)
    try:
        used |= {
            emu.plan(c.input, c.weight_shape, d, **c.params())["kernel"]
            for c in LARGE_INDEX_CASES
            for d in DTYPES
        }
    finally:
        emu.force_64bit_index(False)
    assert set(emu.kernel_names(plannable=True)) - used == set()
    assert any(k.endswith("_large") for k in used) and any(not k.endswith("_large") for k in used)


# ---------------------------------------------------------------- planner


def test_planner_names_match_instantiations(emu):
    registered = {n for n in emu.kernel_names() if n.startswith("conv3d_")}
    assert set(emu.kernel_names(plannable=True)) == registered


@pytest.mark.parametrize("dtype", DTYPES)
def test_planner_respects_limits_and_covers_output(emu, dtype):
    for case in ALL_CASES:
        plan = emu.plan(case.input, case.weight_shape, dtype, **case.params())
        threads = plan["threadgroup"][0] * plan["threadgroup"][1] * plan["threadgroup"][2]
        assert threads <= 1024 and threads % 32 == 0
        assert 0 < plan["threadgroup_memory"] <= 32 * 1024 and plan["threadgroup_memory"] % 16 == 0
        gx, gy, gz = plan["grid"]
        if plan["family"] in ("gemm", "pointwise"):
            assert gx * plan["bm"] >= plan["gemm_m"] > (gx - 1) * plan["bm"]
            assert gy * plan["bn"] >= plan["c_out_g"] > (gy - 1) * plan["bn"]
            assert gz == plan["groups"]
        elif plan["family"] == "small_cin":
            rows = plan["gemm_m"] // plan["out_w"]
            assert gx * plan["bm"] >= plan["out_w"] > (gx - 1) * plan["bm"]
            assert gy == rows and gz == plan["groups"] * plan["tiles_n"]
            assert plan["tiles_n"] * plan["bn"] >= plan["c_out_g"]
        else:
            assert plan["family"] == "depthwise"
            assert gx * plan["bm"] >= plan["gemm_m"] and gy * plan["bn"] >= case.c_out


def test_planner_shrinks_tiles_under_tighter_limits(emu):
    case = case_named("gemm_64x64_ntail")
    default = emu.plan(case.input, case.weight_shape, "float32", **case.params())
    tight = emu.plan(case.input, case.weight_shape, "float32", limits=(12288, 1024, 32), **case.params())
    assert default["threadgroup_memory"] > 12288 >= tight["threadgroup_memory"]
    assert tight["kernel"] in emu.kernel_names(plannable=True)


@pytest.mark.parametrize(
    "name,dtype,family",
    [
        ("depthwise", "float32", "depthwise"),
        ("depthwise_k7_falls_back", "float32", "gemm"),  # 343 taps x 32 channels > 32 KiB
        ("depthwise_k7_falls_back", "float16", "depthwise"),
        ("cin1", "float32", "gemm"),  # rows of 8 outputs: too short for small-C_in
        ("small_cin_1", "float32", "small_cin"),
        ("pointwise_stride_pad", "bfloat16", "pointwise"),
        ("k3_p1", "float16", "gemm"),
    ],
)
def test_planner_branches(emu, name, dtype, family):
    case = case_named(name)
    assert emu.plan(case.input, case.weight_shape, dtype, **case.params())["family"] == family


def test_planner_vector_width_follows_channels(emu):
    assert emu.plan((1, 4, 4, 4, 8), (8, 3, 3, 3, 8), "float32", pad_lo=(1,) * 3, pad_hi=(1,) * 3)["vec"] == 4
    assert emu.plan((1, 4, 4, 4, 6), (8, 3, 3, 3, 6), "float32", pad_lo=(1,) * 3, pad_hi=(1,) * 3)["vec"] == 1
    # C_in 8 in 4 groups: 2 channels per group, not 4-aligned within a tap.
    assert emu.plan((1, 4, 4, 4, 8), (8, 3, 3, 3, 2), "float32", groups=4)["vec"] == 1


def test_planner_refuses_float64(emu):
    with pytest.raises(msl_emulator.EmulatorError, match=r"^\[conv3d\] float64 is not supported on the GPU"):
        emu.plan((1, 4, 4, 4, 8), (8, 3, 3, 3, 8), "float64")


def test_planner_refuses_what_does_not_fit(emu):
    with pytest.raises(msl_emulator.EmulatorError, match=r"^\[conv3d\] No GPU kernel fits"):
        emu.plan((1, 4, 4, 4, 8), (8, 3, 3, 3, 8), "float32", limits=(1024, 1024, 32))
    with pytest.raises(msl_emulator.EmulatorError, match=r"^\[conv3d\] .*32-wide simdgroups"):
        emu.plan((1, 4, 4, 4, 8), (8, 3, 3, 3, 8), "float32", limits=(32768, 1024, 16))
    with pytest.raises(
        msl_emulator.EmulatorError, match=r"^\[conv3d\] The GPU kernels need each input spatial"
    ):
        emu.plan((1, 1, 1, 2**31, 1), (1, 1, 1, 1, 1), "float32")


@pytest.mark.parametrize("name", ["k3_p1", "depthwise", "cin2", "pointwise"])
def test_host_pipeline_check(emu, name):
    # The Metal host hands the compiled pipeline's limits to
    # metal_plan::check_pipeline before encoding; each limit is checked here.
    case = case_named(name)
    args = (case.input, case.weight_shape, "float32")
    plan = emu.plan(*args, **case.params())
    threads = int(np.prod(plan["threadgroup"]))
    mem = plan["threadgroup_memory_length"]
    assert mem % 16 == 0 and plan["threadgroup_memory"] <= mem < plan["threadgroup_memory"] + 16
    assert emu.check_pipeline(*args, (threads, 32, 0, mem), **case.params()) == ""
    head = f'[volconv] The Metal pipeline of kernel "{plan["kernel"]}" ({plan["family"]}<'
    msg = emu.check_pipeline(*args, (threads - 1, 32, 0, mem), **case.params())
    assert msg.startswith(head) and msg.endswith(
        f"in 32-wide simdgroups; the plan needs {threads} in 32-wide ones."
    )
    msg = emu.check_pipeline(*args, (threads, 16, 0, mem), **case.params())
    assert msg.startswith(head) and "in 16-wide simdgroups" in msg
    # 16 static bytes on top of the rounded dynamic length: the message gives
    # the sum it compared, not a number equal to the device's.
    msg = emu.check_pipeline(*args, (threads, 32, 16, mem), **case.params())
    assert msg == (
        f'[volconv] kernel "{plan["kernel"]}" ({plan["family"]}<{plan["template_args"]}>, tile '
        f"{plan['bm']}x{plan['bn']}x{plan['bk']}, simdgroups {plan['wm']}x{plan['wn']}, vec {plan['vec']}, "
        f"32-bit index) needs {mem + 16} bytes of threadgroup memory ({mem} for its tiles + 16 static); "
        f"this GPU has {mem}."
    )
    assert emu.check_pipeline(*args, (threads, 32, 16, mem + 16), **case.params()) == ""


def test_planner_validates_like_the_api(emu):
    with pytest.raises(msl_emulator.EmulatorError, match=r"^\[conv3d\] The number of groups must divide"):
        emu.plan((1, 4, 4, 4, 6), (8, 3, 3, 3, 3), "float32", groups=4)


# ---------------------------------------------------------------- 64-bit addressing


@pytest.fixture(scope="module")
def huge_input():
    """(1, 3, 1024, 1024, 1024) float16: 3 * 2^30 elements, so offsets pass
    2^31. np.zeros maps zero pages lazily; only the strided positions the
    convolutions below read are written (and become resident)."""
    x = np.zeros((1, 3, 1024, 1024, 1024), dtype=np.float16)
    rng = np.random.default_rng(1)
    x[:, :, ::1023, ::1023, :] = rng.uniform(-1, 1, (1, 3, 2, 2, 1024)).astype(np.float16)
    return x


@pytest.mark.parametrize(
    "kernel,c_out,groups,family",
    [((1, 1, 1), 8, 1, "pointwise"), ((2, 1, 1), 8, 1, "gemm"), ((2, 1, 1), 1024, 1024, "depthwise")],
)
def test_offsets_past_2_pow_31(emu, huge_input, kernel, c_out, groups, family):
    x = huge_input
    w = np.random.default_rng(2).uniform(-1, 1, (c_out, *kernel, 1024 // groups)).astype(np.float32)
    stride = (2 if kernel[0] == 1 else 1, 1023, 1023)
    plan = emu.plan(x.shape, w.shape, "float16", stride=stride, groups=groups)
    assert plan["family"] == family
    assert plan["index_bits"] == 64 and plan["kernel"].endswith("_large")
    y, _ = emu.conv3d(x, w, "float16", stride=stride, groups=groups)
    # Same conv on the only positions it reads, so the reference stays small.
    sub = x[:, :, ::1023, ::1023, :].astype(np.float64)
    sub_stride = (stride[0], 1, 1)
    assert_conv_close(y, sub, rounded(w, "float16"), "float16", stride=sub_stride, groups=groups)
    assert np.abs(y).max() > 0


def test_offsets_past_2_pow_31_small_cin(emu):
    # (1, 2, 2^27, 16, 1) float16: depth stride 2^31 elements, so every read
    # of depth 1 sits past 2^31. Rows of 16 outputs take the small-C_in kernel.
    h = 2**27
    x = np.zeros((1, 2, h, 16, 1), dtype=np.float16)
    rng = np.random.default_rng(3)
    x[:, :, :: h - 1] = rng.uniform(-1, 1, (1, 2, 2, 16, 1)).astype(np.float16)
    w = rng.uniform(-1, 1, (8, 2, 1, 3, 1)).astype(np.float32)
    params = {"stride": (1, h - 1, 1), "pad_lo": (0, 0, 1), "pad_hi": (0, 0, 1)}
    plan = emu.plan(x.shape, w.shape, "float16", **params)
    assert plan["family"] == "small_cin"
    assert plan["index_bits"] == 64 and plan["kernel"].endswith("_large")
    y, _ = emu.conv3d(x, w, "float16", **params)
    sub = x[:, :, :: h - 1].astype(np.float64)
    assert_conv_close(y, sub, rounded(w, "float16"), "float16", pad_lo=(0, 0, 1), pad_hi=(0, 0, 1))
    assert np.abs(y).max() > 0


def test_planner_takes_64bit_kernels_past_2_pow_31():
    """Any operand of 2^31 elements or more, or padding that puts the gather's
    first offset at -9 * 2^28, takes the "_large" kernels; the same shapes
    one notch smaller stay 32-bit. (Planning only: nothing is allocated.)"""
    emu = msl_emulator.load_or_skip()

    def bits(x, w, **kw):
        return emu.plan(x, w, "float16", **kw)["index_bits"]

    # Output of 2^32 elements from a 2^16-element input (C_out 2^16).
    assert bits((1, 1, 1, 2**16, 1), (2**16, 1, 1, 1, 1)) == 64
    assert bits((1, 1, 1, 2**10, 1), (2**10, 1, 1, 1, 1)) == 32
    # A weight of 2^31 elements.
    assert bits((1, 1, 1, 1, 2**15), (2**16, 1, 1, 1, 2**15)) == 64
    assert bits((1, 1, 1, 1, 2**10), (2**10, 1, 1, 1, 2**10)) == 32
    # An input of 2^31 elements.
    assert bits((2, 2**10, 2**10, 2**9, 2), (1, 1, 1, 1, 2), stride=(2**10, 2**10, 2**9)) == 64
    assert bits((2, 2**8, 2**10, 2**9, 2), (1, 1, 1, 1, 2), stride=(2**8, 2**10, 2**9)) == 32
    # Input and output below 2^30, but the padding row's base offset is
    # -9 * 2^28 (depth padding 9 over depth slices of 2^28 elements).
    far = {"stride": (100, 2**14, 2**14), "pad_lo": (9, 0, 0), "pad_hi": (9, 0, 0)}
    assert bits((1, 2, 2**14, 2**14, 1), (1, 1, 1, 1, 1), **far) == 64
    near = {"stride": (100, 2**14, 2**14), "pad_lo": (1, 0, 0), "pad_hi": (1, 0, 0)}
    assert bits((1, 2, 2**14, 2**14, 1), (1, 1, 1, 1, 1), **near) == 32


# ---------------------------------------------------------------- device-byte counters


def test_counters_pointwise_exact(emu):
    # 128 rows = 2 threadgroups of 64; each reads its rows once and all 16 x 8 weights.
    x = np.ones((2, 4, 4, 4, 8), np.float32)
    w = np.ones((16, 1, 1, 1, 8), np.float32)
    y, (read, written) = emu.conv3d(x, w, "float32")
    assert np.all(y == 8)
    assert written == y.size * 4
    assert read == x.nbytes + 2 * w.nbytes


def test_counters_sampled_threadgroups(emu):
    # The intensity bench runs every s-th threadgroup; here 1 of the 2.
    x = np.ones((2, 4, 4, 4, 8), np.float32)
    w = np.ones((16, 1, 1, 1, 8), np.float32)
    y, (read, written, run, total) = emu.run(x, w, "float32", sample_stride=2)
    assert (run, total) == (1, 2)
    assert read == x.nbytes // 2 + w.nbytes and written == y.size * 4 // 2
    assert np.all(y.reshape(-1, 16)[:64] == 8) and np.all(y.reshape(-1, 16)[64:] == 0)


@pytest.mark.parametrize("name", ["k3_p1", "depthwise", "small_cin_stem", "groups2"])
def test_counters_write_each_output_once(emu, name):
    case = case_named(name)
    x, w = case.inputs()
    y, (read, written) = emu.conv3d(x, w, "float16", **case.params())
    assert written == y.size * 2
    assert read >= w.size * 2  # every weight at least once


# ---------------------------------------------------------------- the emulator itself


def apple_lane_layout() -> dict[tuple[int, int], tuple[int, int]]:
    """(lane, element) -> (row, col) as Apple documents it (and MLX uses)."""
    table = {}
    for lane in range(32):
        qid = lane // 4
        fm = (qid & 4) + (lane // 2) % 4
        fn = (qid & 2) * 2 + (lane % 2) * 2
        table[(lane, 0)], table[(lane, 1)] = (fm, fn), (fm, fn + 1)
    return table


def test_apple_layout_table_is_a_permutation():
    cells = set(apple_lane_layout().values())
    assert cells == {(r, c) for r in range(8) for c in range(8)}


def self_check_matrices() -> tuple[np.ndarray, np.ndarray]:
    """The inputs csrc/metal/portable/self_check.cpp documents: A[r][c] = 8r + c,
    B's elements (5i + 3) % 7 - 3."""
    i = np.arange(64)
    return i.reshape(8, 8).astype(np.float64), ((i * 5 + 3) % 7 - 3).reshape(8, 8).astype(np.float64)


def test_thread_elements_follow_apple_layout_in_host_self_check(emu):
    """The self-check the Metal host runs before the first conv
    (metal/conv3d_self_check.metal + the portable verdict), on the emulated
    GPU, judged here against Apple's documented layout independently."""
    reason, out = emu.self_check()
    assert reason == ""
    a, b = self_check_matrices()
    for (lane, e), (r, c) in apple_lane_layout().items():
        assert out[2 * lane + e] == a[r, c], (lane, e)  # simdgroup_load's placement
        if e == 0:
            assert (out[64 + 2 * lane], out[65 + 2 * lane]) == (r, c), lane  # fragment_coord's
    np.testing.assert_array_equal(out[128:].reshape(8, 8), a @ b)


def test_simdgroup_load_store_mma_matches_matmul(emu):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-1, 1, (8, 8)).astype(np.float32), rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    out = emu.probe("emu_probe_load_store_mma", a, b).reshape(8, 8)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5)


def test_simd_sum_and_shuffle(emu):
    x = np.arange(64, dtype=np.float32)
    out = emu.probe("emu_probe_simd_ops", x, np.zeros(64))
    assert np.all(out[:32] == x[:32].sum())
    assert np.all(out[32:] == np.roll(x[:32], -1))


def test_wrong_lane_layout_is_caught(emu):
    """With a plausible but wrong layout in the emulator, the host's
    self-check reports it and every kernel that places fragments itself
    fails; code that only uses simdgroup_load/store still passes (it does not
    depend on the layout)."""
    rng = np.random.default_rng(4)
    a, b = rng.uniform(-1, 1, (8, 8)).astype(np.float32), rng.uniform(-1, 1, (8, 8)).astype(np.float32)
    emu.set_lane_layout(wrong=True)
    try:
        reason, _ = emu.self_check()
        assert reason.startswith("simdgroup_load put element (") and "the kernels assume (" in reason
        agnostic = emu.probe("emu_probe_load_store_mma", a, b).reshape(8, 8)
        np.testing.assert_allclose(agnostic, a @ b, rtol=1e-5, atol=1e-5)
        for name in ("k3_p1", "small_cin_1", "pointwise_64x64"):
            case = case_named(name)
            with pytest.raises(AssertionError):
                check_case(emu, case, "float32")
    finally:
        emu.set_lane_layout(wrong=False)
    assert emu.self_check()[0] == ""
    check_case(emu, case_named("k3_p1"), "float32")


def test_bfloat_conversion_rounds_to_nearest_even(emu):
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**32, 100000, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 2**16, 2000, dtype=np.uint64).astype(np.uint32) << 16) | 0x8000  # exactly halfway
    bits = np.concatenate([bits, ties])
    # Finite, and far enough from the top that rounding up stays finite.
    x = bits[((bits >> 23) & 0xFF) < 0xFE].view(np.float32)
    got = emu.float_to_bfloat(x)
    # Independent reference: the nearest bfloat16 below and above, ties to even.
    lo = (x.view(np.uint32) >> 16).astype(np.uint32)
    below = (lo << 16).view(np.float32).astype(np.float64)
    above = ((lo + 1) << 16).view(np.float32).astype(np.float64)
    xd = np.abs(x.astype(np.float64))
    d_lo, d_hi = np.abs(xd - np.abs(below)), np.abs(np.abs(above) - xd)
    expect = np.where(d_lo < d_hi, lo, np.where(d_hi < d_lo, lo + 1, np.where(lo % 2 == 0, lo, lo + 1)))
    np.testing.assert_array_equal(got, expect.astype(np.uint16))
