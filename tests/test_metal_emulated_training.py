"""The training ops' Metal kernels (metal/conv_training_*.metal), run through
the MSL emulator exactly as the training planner (csrc/metal_plan/
conv_training_plan.cpp) plans them, with every plan it can choose forced in
turn: against the float64 references of reference_training.py and the
adjoint identities; plus the plans' own contract (phases cover the output
once, partial sums fixed by the problem, weight gradients identical across
tiles and index widths)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator
import training_emulator
from reference_training import (
    _pad_or_crop,
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_general_reference,
    conv_transpose3d_reference,
)

from conftest import cast, require_emulator
from reference import conv3d_reference

pytestmark = pytest.mark.metal_emulated
require_emulator()

DTYPES = ["float32", "float16", "bfloat16"]


def t3(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


class Case(NamedTuple):
    name: str
    op: str
    n: int
    size: tuple  # the input's spatial size (the forward input's, for the gradients)
    cin: int
    cout: int
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    groups: int
    output_padding: tuple
    input_dilation: tuple
    flip: bool

    def weight_shape(self):
        return (self.cout, *self.kernel, self.cin // self.groups)

    def params(self):
        return dict(
            stride=self.stride,
            pad_lo=self.pad_lo,
            pad_hi=self.pad_hi,
            dilation=self.dilation,
            groups=self.groups,
            output_padding=self.output_padding,
            input_dilation=self.input_dilation,
            flip=self.flip,
        )

    def conv_kwargs(self):
        return dict(
            stride=self.stride,
            pad_lo=self.pad_lo,
            pad_hi=self.pad_hi,
            dilation=self.dilation,
            groups=self.groups,
        )


def C(name, op, n, size, cin, cout, k, s=1, lo=0, hi=None, d=1, g=1, op_pad=0, idil=1, flip=False):
    hi = lo if hi is None else hi
    return Case(
        name, op, n, t3(size), cin, cout, t3(k), t3(s), t3(lo), t3(hi), t3(d), g, t3(op_pad), t3(idil), flip
    )


CASES = [
    # conv_transpose3d: phases with 1-2 taps, zero phases (k2 s3), output padding, crops, groups, depthwise.
    C("t_k3s2p1op1", "conv_transpose3d", 1, (3, 2, 3), 3, 5, 3, s=2, lo=1, op_pad=1),
    C("t_k2s3_zero_phases", "conv_transpose3d", 1, (2, 3, 2), 4, 3, 2, s=3),
    C("t_groups", "conv_transpose3d", 2, (2, 2, 3), 6, 9, 3, s=2, lo=1, g=3, op_pad=1),
    C("t_dilation", "conv_transpose3d", 1, (3, 2, 3), 4, 6, 3, s=(1, 2, 1), d=(3, 2, 2), lo=(1, 2, 0), op_pad=(2, 1, 1)),
    C("t_crop", "conv_transpose3d", 1, (3, 3, 2), 3, 2, 2, s=2, lo=(3, 2, 1), hi=(1, 3, 2)),
    C("t_cout40", "conv_transpose3d", 1, (2, 2, 2), 5, 40, 2, s=2),
    C("t_depthwise", "conv_transpose3d", 1, (3, 3, 4), 8, 8, 3, s=2, lo=1, g=8, op_pad=(1, 0, 1)),
    # conv3d_grad_input: the forward geometry (size, channels) of the conv it differentiates.
    C("gi_s2", "conv3d_grad_input", 1, (7, 6, 5), 17, 3, 3, s=2, lo=1),
    C("gi_s3_asym", "conv3d_grad_input", 1, (8, 7, 5), 3, 4, (2, 3, 2), s=(3, 2, 3), lo=(0, 1, 2), hi=(2, 0, 1)),
    C("gi_groups", "conv3d_grad_input", 2, (5, 4, 5), 6, 9, 3, s=2, lo=1, g=3),
    C("gi_dilation", "conv3d_grad_input", 1, (6, 5, 6), 4, 6, 3, d=(2, 1, 2), lo=2),
    C("gi_depthwise_mult2", "conv3d_grad_input", 1, (5, 4, 6), 4, 8, 3, s=(2, 1, 2), lo=1, g=4),
    C("ti_k3s2", "conv_transpose3d_grad_input", 1, (3, 2, 3), 3, 5, 3, s=2, lo=1, op_pad=1),
    # conv_general: input dilation with flip, groups, kernel dilation.
    C("g_flip_idil2", "conv_general", 1, (3, 3, 4), 6, 9, (3, 2, 3), idil=2, flip=True),
    C("g_groups_flip", "conv_general", 2, (3, 2, 3), 6, 9, (3, 2, 3), s=2, lo=2, hi=1, d=(2, 1, 1), idil=(2, 2, 3), g=3, flip=True),
    # Weight gradients: conv3d's, conv_transpose3d's (input dilation), conv_general's (flip).
    C("gw_k3p1", "conv3d_grad_weight", 2, (5, 6, 4), 3, 17, 3, lo=1),
    C("gw_s3_asym", "conv3d_grad_weight", 1, (8, 7, 9), 3, 3, (2, 3, 2), s=(3, 2, 3), lo=(0, 1, 2), hi=(2, 0, 1)),
    C("gw_groups", "conv3d_grad_weight", 2, (5, 6, 5), 6, 9, 3, s=2, lo=1, g=3),
    C("gw_cout40", "conv3d_grad_weight", 1, (4, 4, 5), 5, 40, 2, lo=(1, 0, 1)),
    C("gw_many_parts", "conv3d_grad_weight", 1, (8, 8, 33), 2, 3, 3, lo=1),
    C("gw_depthwise", "conv3d_grad_weight", 1, (6, 5, 7), 8, 8, 3, s=(2, 1, 2), lo=(1, 0, 1), hi=(0, 1, 1), g=8),
    C("gw_depthwise_mult2", "conv3d_grad_weight", 1, (5, 4, 6), 4, 8, 3, lo=1, g=4),
    C("tw_k3s2", "conv_transpose3d_grad_weight", 1, (3, 2, 3), 3, 5, 3, s=2, lo=1, op_pad=1),
    C("tw_depthwise", "conv_transpose3d_grad_weight", 1, (3, 3, 4), 8, 8, 3, s=2, lo=1, g=8),
    C("gww_flip_idil", "conv_general_grad_weight", 2, (3, 2, 3), 6, 9, (3, 2, 3), s=2, lo=2, hi=1, idil=(2, 2, 3), g=3, flip=True),
]  # fmt: skip

WEIGHT_GRAD_OPS = {"conv3d_grad_weight", "conv_transpose3d_grad_weight", "conv_general_grad_weight"}


@pytest.fixture(scope="module")
def emu():
    return training_emulator.TrainingEmulator(msl_emulator.load_or_skip())


@pytest.fixture
def forced(emu):
    yield emu.force
    emu.force()


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _rounded(a, dtype):
    return cast(a, dtype).astype(np.float64)


def _transposed_weight(w, groups):
    """conv_transpose3d's weight (C_out, K..., C_in/g) as the forward conv3d
    weight (C_in, K..., C_out/g) whose input gradient the transposed conv is."""
    c_out, *k, cig = w.shape
    cog = c_out // groups
    wg = w.reshape(groups, cog, *k, cig)
    return np.moveaxis(wg, (1, 5), (5, 1)).reshape(groups * cig, *k, cog)


def _forward(case):
    """The forward op (a float64 reference) of which the case's op is a
    gradient, as f(x, w), with x's and w's shapes."""
    if case.op.startswith("conv3d_"):
        return (lambda x, w: conv3d_reference(x, w, **case.conv_kwargs())), (case.n, *case.size, case.cin)
    if case.op.startswith("conv_transpose3d"):
        return (
            lambda x, w: conv_transpose3d_reference(
                x, w, output_padding=case.output_padding, **case.conv_kwargs()
            )
        ), (case.n, *case.size, case.cin)
    kw = dict(
        stride=case.stride, pad_lo=case.pad_lo, pad_hi=case.pad_hi, kernel_dilation=case.dilation,
        input_dilation=case.input_dilation, groups=case.groups, flip=case.flip,
    )  # fmt: skip
    return (lambda x, w: conv_general_reference(x, w, **kw)), (case.n, *case.size, case.cin)


def operands_and_reference(case, dtype):
    """(a, b, c_shape) for the emulator, and (reference, scale) in float64
    from reference_training.py on the values rounded to dtype."""
    forward, x_shape = _forward(case)
    w_shape = case.weight_shape()
    x, w = _rounded(_data(x_shape, 1), dtype), _rounded(_data(w_shape, 2), dtype)
    y_shape = forward(np.zeros(x_shape), np.zeros(w_shape)).shape
    gy = _rounded(_data(y_shape, 3), dtype)
    ax, aw, agy = np.abs(x), np.abs(w), np.abs(gy)
    ck = case.conv_kwargs()
    if case.op in ("conv_transpose3d", "conv_general"):
        return (x, w, None), (forward(x, w), forward(ax, aw))
    if case.op == "conv3d_grad_input":
        return (gy, w, x_shape), (
            conv3d_grad_input_reference(gy, w, x_shape, **ck),
            conv3d_grad_input_reference(agy, aw, x_shape, **ck),
        )
    if case.op == "conv3d_grad_weight":
        return (x, gy, w_shape), (
            conv3d_grad_weight_reference(x, gy, w_shape, **ck),
            conv3d_grad_weight_reference(ax, agy, w_shape, **ck),
        )
    if case.op == "conv_transpose3d_grad_input":
        # conv_transpose3d(x, w) is conv3d's input gradient for the weight
        # _transposed_weight(w): its own input gradient is that forward conv3d.
        wt, awt = _transposed_weight(w, case.groups), _transposed_weight(aw, case.groups)
        return (gy, w, x_shape), (conv3d_reference(gy, wt, **ck), conv3d_reference(agy, awt, **ck))
    if case.op == "conv_transpose3d_grad_weight":
        # ... and its weight gradient, conv3d's weight gradient with the roles of
        # input and grad_output swapped, transposed back.
        wt_shape = _transposed_weight(np.zeros(w_shape), case.groups).shape
        ref = conv3d_grad_weight_reference(gy, x, wt_shape, **ck)
        scale = conv3d_grad_weight_reference(agy, ax, wt_shape, **ck)
        return (x, gy, w_shape), (back_to(ref, w_shape, case.groups), back_to(scale, w_shape, case.groups))
    assert case.op == "conv_general_grad_weight"

    # conv_general is conv3d of the dilated, padded input with the (flipped) kernel.
    def dilated(a):
        idil = case.input_dilation
        d = np.zeros((a.shape[0], *[(a.shape[1 + i] - 1) * idil[i] + 1 for i in range(3)], a.shape[4]))
        d[:, :: idil[0], :: idil[1], :: idil[2]] = a
        return _pad_or_crop(d, case.pad_lo, case.pad_hi)

    kw = dict(stride=case.stride, dilation=case.dilation, groups=case.groups)
    ref = conv3d_grad_weight_reference(dilated(x), gy, w_shape, **kw)
    scale = conv3d_grad_weight_reference(dilated(ax), agy, w_shape, **kw)
    if case.flip:
        ref, scale = ref[:, ::-1, ::-1, ::-1], scale[:, ::-1, ::-1, ::-1]
    return (x, gy, w_shape), (ref, scale)


def back_to(a, w_shape, groups):
    """Inverse of _transposed_weight: (C_in, K..., C_out/g) -> (C_out, K..., C_in/g)."""
    c_in, *k, cog = a.shape
    cig = c_in // groups
    ag = a.reshape(groups, cig, *k, cog)
    return np.moveaxis(ag, (1, 5), (5, 1)).reshape(w_shape)


def run_case(emu, case, dtype):
    (a, b, c_shape), (ref, scale) = operands_and_reference(case, dtype)
    got, counters = emu.run(case.op, a, b, dtype, c_shape, **case.params())
    assert_close(got, ref, scale, dtype, f"{case.op} {case.name}")
    return got, counters


def forced_plans(emu, case):
    """Every (index64, family, tile) the planner can be forced to for the
    case, each with a dtype: the GEMM tiles rotate through the dtypes (the
    cases together cover each instantiation), the depthwise kernel, where it
    applies, runs in every dtype."""
    dtype = "float32"
    weight_grad = case.op in WEIGHT_GRAD_OPS
    (a, b, c_shape), _ = operands_and_reference(case, dtype)
    base = emu.plan(case.op, a.shape, b.shape, dtype, c_shape, **case.params())
    k = CASES.index(case)
    plans = [(big, 0, t, DTYPES[(2 * t + big + k) % 3]) for big in (False, True) for t in range(2)]
    depthwise_family = "wgrad_depthwise" if weight_grad else "phase_depthwise"
    if base["dispatches"][0]["family"] == depthwise_family:
        plans += [(big, 1, -1, d) for big in (False, True) for d in DTYPES]
    return plans


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity(emu, case, dtype):
    (a, b, c_shape), _ = operands_and_reference(case, dtype)
    plan = emu.plan(case.op, a.shape, b.shape, dtype, c_shape, **case.params())
    assert plan["index_bits"] == 32
    run_case(emu, case, dtype)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity_every_forced_plan(emu, forced, case):
    """Each plan the planner can choose for the case (each GEMM tile, the
    depthwise kernel where it applies, 32- and 64-bit indices), the dtype
    chosen by forced_plans so that every instantiation runs somewhere."""
    for big, family, tile, dtype in forced_plans(emu, case):
        forced(index64=big, family=family, tile=tile)
        run_case(emu, case, dtype)


def test_every_training_kernel_is_exercised(emu, forced):
    used = set()
    for case in CASES:
        for big, family, tile, dtype in forced_plans(emu, case):
            forced(index64=big, family=family, tile=tile)
            (a, b, c_shape), _ = operands_and_reference(case, dtype)
            plan = emu.plan(case.op, a.shape, b.shape, dtype, c_shape, **case.params())
            used |= {d["kernel"] for d in plan["dispatches"]}
        forced()
    # The padding fold's kernels: test_metal_emulated_padding_grad.py.
    assert {k for k in emu.kernel_names() if "_padding_fold_" not in k} - used == set()


# ---------------------------------------------------------------- adjoint identities


def _dot(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.op != "conv_transpose3d" and c.op != "conv_general"], ids=lambda c: c.name
)
def test_adjoint_identity(emu, case):
    """<f(x, w), g> = <x, grad_input(g)> = <w, grad_weight(x, g)> with f the
    float64 forward reference and the gradient from the emulated GPU (float32)."""
    forward, x_shape = _forward(case)
    x, w = _rounded(_data(x_shape, 4), "float32"), _rounded(_data(case.weight_shape(), 5), "float32")
    y = forward(x, w)
    g = _rounded(_data(y.shape, 6), "float32")
    scale = float(np.sum(forward(np.abs(x), np.abs(w)) * np.abs(g)))
    if case.op in WEIGHT_GRAD_OPS:
        gw, _ = emu.run(case.op, x, g, "float32", w.shape, **case.params())
        other = _dot(w, gw)
    else:
        gx, _ = emu.run(case.op, g, w, "float32", x.shape, **case.params())
        other = _dot(x, gx)
    assert abs(_dot(y, g) - other) <= 1e-5 * scale, (_dot(y, g), other)


# ---------------------------------------------------------------- the plans' contract


@pytest.mark.parametrize("case", [c for c in CASES if c.op not in WEIGHT_GRAD_OPS], ids=lambda c: c.name)
def test_phases_cover_each_output_once(emu, case):
    (a, b, c_shape), _ = operands_and_reference(case, "float32")
    plan = emu.plan(case.op, a.shape, b.shape, "float32", c_shape, **case.params())
    out = plan["result_shape"][1:4]
    hits = np.zeros(out, dtype=int)
    for d in plan["dispatches"]:
        ranges = [range(d["out_first"][i], out[i], d["out_step"][i]) for i in range(3)]
        assert [len(r) for r in ranges] == d["row_count"]
        hits[np.ix_(*ranges)] += 1
        assert d["buffers"] == ["input", "weight", "result"]
    assert np.all(hits == 1)
    # Phases: the product over dimensions of stride / gcd(stride, input dilation).
    steps = plan["dispatches"][0]["out_step"]
    assert len(plan["dispatches"]) == int(np.prod([min(steps[i], out[i]) for i in range(3)]))


def test_zero_phases_multiply_nothing(emu):
    """k2 stride 3: along each dimension one phase in three has no tap; those
    dispatches have K = 0 (they write zeros, read no input)."""
    case = next(c for c in CASES if c.name == "t_k2s3_zero_phases")
    (a, b, _), _ = operands_and_reference(case, "float32")
    plan = emu.plan(case.op, a.shape, b.shape, "float32", **case.params())
    zero = [d for d in plan["dispatches"] if d["phase_k"] == 0]
    assert len(plan["dispatches"]) == 27 and len(zero) == 27 - 8
    assert all(d["phase_k"] == 4 for d in plan["dispatches"] if d["phase_k"])  # 1 tap x 4 channels


def test_weight_grad_plan_is_partials_then_reduction(emu):
    case = next(c for c in CASES if c.name == "gw_many_parts")
    (a, b, c_shape), _ = operands_and_reference(case, "float32")
    plan = emu.plan(case.op, a.shape, b.shape, "float32", c_shape, **case.params())
    partial, reduce = plan["dispatches"]
    positions = case.n * 8 * 8 * 33  # about 2048 per part
    assert plan["parts"] == 2 == partial["parts"] and partial["part_len"] == positions // 2
    assert partial["buffers"] == ["input", "output", "partials"]
    assert reduce["buffers"] == ["partials", "partials", "result"] and reduce["family"] == "wgrad_reduce"
    assert plan["partials_bytes"] == 2 * 4 * int(np.prod(case.weight_shape()))
    assert partial["grid"][2] == case.groups * plan["parts"]


def test_weight_grad_bits_independent_of_tile_and_index_width(emu, forced):
    """The partial sums are fixed by the problem, each summed in one order:
    every GEMM tile and both index widths give the same bits."""
    case = next(c for c in CASES if c.name == "gw_many_parts")
    (a, b, c_shape), _ = operands_and_reference(case, "float32")
    results = []
    for big, tile in [(False, 0), (False, 1), (True, 0)]:
        forced(index64=big, family=0, tile=tile)
        results.append(emu.run(case.op, a, b, "float32", c_shape, **case.params())[0])
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_planner_refuses_float64_and_wrong_simd_width(emu):
    case = CASES[0]
    (a, b, _), _ = operands_and_reference(case, "float32")
    with pytest.raises(
        msl_emulator.EmulatorError, match=r"^\[conv_transpose3d\] float64 is not supported on the GPU"
    ):
        emu.plan(case.op, a.shape, b.shape, "float64", **case.params())
    with pytest.raises(msl_emulator.EmulatorError, match=r"^\[conv_transpose3d\] .*32-wide simdgroups"):
        emu.plan(case.op, a.shape, b.shape, "float32", limits=(32768, 1024, 16), **case.params())


def test_planner_takes_64bit_kernels_past_2_pow_31(emu):
    """A grad_input whose result passes 2^31 elements plans the "_large"
    kernels; one 2^4 times smaller stays 32-bit (planning only)."""

    def bits(d):
        shape = (1, 2**d, 2**10, 2**10, 2)
        gy_shape = (1, 2**d, 2**10, 2**10, 1)
        return emu.plan("conv3d_grad_input", gy_shape, (1, 1, 1, 1, 2), "float16", shape)["index_bits"]

    assert bits(10) == 64 and bits(6) == 32


# ---------------------------------------------------------------- mutants

# tests/emulator/mutants/training/MUTANTS: each mutant and the case whose
# parity check must catch it.
MUTANT_CASES = {
    "phase_ignores_weight_layout": "gi_s2",
    "wgrad_ignores_flip": "gww_flip_idil",
    "reduce_drops_first_part": "gw_many_parts",
    "phase_skips_the_last_slice": "t_k3s2p1op1",
}


def test_every_training_mutant_has_a_case():
    assert training_emulator.mutant_names("training") == set(MUTANT_CASES)


@pytest.mark.parametrize("mutant", list(MUTANT_CASES))
def test_training_mutants_are_caught(emu, mutant):
    """The same parity check (float32) on a library built from the mutated
    kernel fails; the real kernels pass it (test_parity)."""
    broken = training_emulator.mutant_emulator("training", mutant)
    case = next(c for c in CASES if c.name == MUTANT_CASES[mutant])
    with pytest.raises(AssertionError, match="elements"):
        run_case(broken, case, "float32")
    run_case(emu, case, "float32")


# ---------------------------------------------------------------- the Metal host (read, not run)


def test_host_encodes_every_dispatch_field():
    """Each field of TrainingDispatch is read by csrc/metal/conv_training.mm,
    directly or through the planner helpers it calls (describe,
    threadgroup_memory_length, check_pipeline), and the plan's scratch size
    and dispatch list are used: the host encodes the whole plan."""
    root = Path(__file__).resolve().parents[1]
    header = (root / "csrc" / "metal_plan" / "conv_training_plan.h").read_text()
    planner = (root / "csrc" / "metal_plan" / "conv_training_plan.cpp").read_text()
    host = re.sub(r"//[^\n]*", "", (root / "csrc" / "metal" / "conv_training.mm").read_text())
    for helper in ("threadgroup_memory_length", "check_pipeline", "describe"):
        # describe: called by check_pipeline.
        assert re.search(rf"metal_plan::{helper}\(d\b", host) or helper == "describe", helper
        host += re.search(
            rf"^[\w:<> ]+\b{helper}\(const TrainingDispatch& d[^)]*\) \{{\n?(.*?)^\}}", planner, re.M | re.S
        ).group(1)
    body = re.search(r"struct TrainingDispatch \{(.*?)\n\};", header, re.S).group(1)
    fields = re.findall(
        r"^\s+[\w:<>\[\]]+\s+(\w+)(?:\[\d+\])?(?:\s*=[^;]*|\{\})?;", re.sub(r"//[^\n]*", "", body), re.M
    )
    fields += ["bn", "bk", "wm", "wn"]  # declared on bm's line
    assert {"kernel_name", "family", "buffers", "grid", "threadgroup", "params"} <= set(fields)
    unused = [f for f in fields if not re.search(rf"\bd\.{f}\b", host)]
    assert not unused, f"dispatch fields the host ignores: {unused}"
    for used in ("plan.partials_bytes", "plan.dispatches", "plan.dtype"):
        assert used in host
    assert (
        host.count("dispatchThreadgroups") == 1
        and "for (std::size_t i = 0; i < plan.dispatches.size()" in host
    )
