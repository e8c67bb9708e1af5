"""conv3d's input gradient under a padding mode on the GPU (the border fold:
csrc/metal_plan/conv_training_plan.cpp, metal/conv_training_fold.metal),
run through the MSL emulator exactly as the training planner plans it:
against torch.autograd of F.pad(mode) + F.conv3d in float64, and against
the adjoint identity <conv(pad(x)), gy> == <x, grad_input(gy)> with the
forward built from np.pad; plus the plan's shell boxes, and the fold
mutants (tests/emulator/mutants/fold/MUTANTS) that these checks catch."""

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
from reference_training import assert_close

from conftest import cast, require_emulator
from reference import TOLERANCE, conv3d_reference

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.metal_emulated
require_emulator()


def t3(v):
    return (v, v, v) if isinstance(v, (int, str)) else tuple(v)


class Case(NamedTuple):
    """The forward conv3d whose input gradient is taken (NDHWC, weight
    (C_out, K..., C_in / groups)), its padding and modes per axis."""

    name: str
    n: int
    size: tuple
    cin: int
    cout: int
    kernel: tuple
    stride: tuple
    pad_lo: tuple
    pad_hi: tuple
    dilation: tuple
    groups: int
    modes: tuple

    def x_shape(self):
        return (self.n, *self.size, self.cin)

    def w_shape(self):
        return (self.cout, *self.kernel, self.cin // self.groups)

    def params(self):
        return dict(
            stride=self.stride,
            pad_lo=self.pad_lo,
            pad_hi=self.pad_hi,
            dilation=self.dilation,
            groups=self.groups,
            padding_mode=self.modes,
        )


def C(name, size, cin, cout, k, modes, lo=1, hi=None, s=1, d=1, g=1, n=1):
    hi = lo if hi is None else hi
    return Case(name, n, t3(size), cin, cout, t3(k), t3(s), t3(lo), t3(hi), t3(d), g, t3(modes))


CASES = [
    C("reflect_k3p1", (5, 4, 6), 3, 4, 3, "reflect"),
    C("replicate_k3p1", (5, 4, 6), 3, 4, 3, "replicate"),
    C("circular_k3p1", (5, 4, 6), 3, 4, 3, "circular"),
    C("causal_replicate", (4, 5, 5), 3, 5, 3, "replicate", lo=(2, 1, 1), hi=(0, 1, 1), n=2),
    C("mixed", (5, 4, 5), 3, 4, (3, 3, 2), ("replicate", "reflect", "circular"), lo=(2, 1, 0), hi=(0, 2, 1)),
    C("zeros_axis", (4, 5, 4), 2, 3, 3, ("zeros", "circular", "reflect"), lo=(1, 2, 1), hi=(2, 1, 1)),
    C("stride2_reflect", (7, 6, 5), 3, 4, 3, "reflect", lo=(1, 2, 1), hi=(1, 0, 2), s=2),
    C("stride_dilation", (6, 5, 7), 2, 3, (3, 2, 3), "replicate", lo=2, hi=(1, 2, 2), s=(2, 1, 2), d=(2, 1, 2)),
    C("groups_circular", (5, 4, 5), 6, 9, 3, "circular", lo=(1, 2, 1), hi=(2, 1, 1), s=2, g=3, n=2),
    C("depthwise_mult2", (5, 4, 6), 4, 8, 3, "reflect", lo=(1, 1, 2), hi=(2, 1, 1), g=4),
    C("cin20", (3, 4, 3), 20, 3, 3, "replicate", lo=(1, 2, 1), hi=(2, 1, 1)),
]  # fmt: skip
BY_NAME = {c.name: c for c in CASES}
LOW_PRECISION = ["causal_replicate", "mixed", "depthwise_mult2"]

TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.fixture(scope="module")
def emu():
    return training_emulator.TrainingEmulator(msl_emulator.load_or_skip())


@pytest.fixture
def forced(emu):
    yield emu.force
    emu.force()


def _operands(case, dtype):
    """gy and w rounded to dtype (float64 values), and x for the adjoint."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(case.x_shape())
    w = cast(rng.standard_normal(case.w_shape()), dtype).astype(np.float64)
    y_shape = _forward_padded(case, x, w).shape
    gy = cast(rng.standard_normal(y_shape), dtype).astype(np.float64)
    return x, w, gy


def _forward_padded(case, x, w):
    """conv3d of np.pad(x, mode per axis) with no padding of its own (float64)."""
    for axis, mode in enumerate(case.modes):
        widths = [(0, 0)] * 5
        widths[1 + axis] = (case.pad_lo[axis], case.pad_hi[axis])
        x = np.pad(x, widths, mode=NUMPY_MODE[mode])
    return conv3d_reference(x, w, stride=case.stride, dilation=case.dilation, groups=case.groups)


def torch_grad_input(case, gy, w):
    """d/dx <conv3d(F.pad(x, mode per axis), w), gy> by torch.autograd, float64, NDHWC.
    On one thread: the sizes are tiny, and ThreadSanitizer (run_sanitizers.sh)
    cannot see libgomp's synchronisation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_grad_input(case, gy, w)
    finally:
        torch.set_num_threads(threads)


def _torch_grad_input(case, gy, w):
    x = torch.zeros(case.x_shape(), dtype=torch.float64).permute(0, 4, 1, 2, 3).requires_grad_()
    xp = x
    for axis, mode in enumerate(case.modes):
        widths = [0] * 6  # (W lo, W hi, H lo, H hi, D lo, D hi)
        widths[2 * (2 - axis)] = case.pad_lo[axis]
        widths[2 * (2 - axis) + 1] = case.pad_hi[axis]
        xp = F.pad(xp, widths, mode=TORCH_MODE[mode])
    wt = torch.from_numpy(w).permute(0, 4, 1, 2, 3)
    y = F.conv3d(xp, wt, stride=case.stride, dilation=case.dilation, groups=case.groups)
    y.backward(torch.from_numpy(gy).permute(0, 4, 1, 2, 3))
    return x.grad.permute(0, 2, 3, 4, 1).numpy()


def run_case(emulator, case, dtype):
    """The emulated input gradient checked against torch (per element) and the
    adjoint identity; returns the plan."""
    x, w, gy = _operands(case, dtype)
    got, _ = emulator.run("conv3d_grad_input", gy, w, dtype, case.x_shape(), **case.params())
    ref = torch_grad_input(case, gy, w)
    scale = torch_grad_input(case, np.abs(gy), np.abs(w))
    assert_close(got, ref, scale, dtype, case.name)
    # <conv(pad(x)), gy> == <x, dx>, the forward built without torch.
    lhs = float(np.sum(_forward_padded(case, x, w) * gy))
    rhs = float(np.sum(x * got))
    bound = TOLERANCE[dtype] * float(np.sum(np.abs(x) * scale))
    assert abs(lhs - rhs) <= bound, f"{case.name}: adjoint {lhs} vs {rhs} (bound {bound})"
    return emulator.plan("conv3d_grad_input", gy.shape, w.shape, dtype, case.x_shape(), **case.params())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_parity_float32(emu, case):
    plan = run_case(emu, case, "float32")
    assert plan["fold_boxes"], "a padding mode with padding plans a fold"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", LOW_PRECISION)
def test_parity_low_precision(emu, name, dtype):
    run_case(emu, BY_NAME[name], dtype)


# (case, dtype, index64, family, tile): every phase family and every fold
# kernel (each dtype, both index widths) with the test_parity_* runs.
FORCED = [
    ("mixed", "float32", True, -1, 1),
    ("depthwise_mult2", "float32", False, 0, -1),
    ("depthwise_mult2", "float16", True, 1, -1),
    ("causal_replicate", "bfloat16", True, -1, -1),
]


@pytest.mark.parametrize("name,dtype,index64,family,tile", FORCED)
def test_parity_forced_plans(emu, forced, name, dtype, index64, family, tile):
    """The boxes take the same forced kernels as the main dispatches."""
    forced(index64, family, tile)
    plan = run_case(emu, BY_NAME[name], dtype)
    folds = [d for d in plan["dispatches"] if d["family"] == "padding_fold"]
    assert folds and all(d["kernel"].endswith("_large") == index64 for d in plan["dispatches"])


def test_every_fold_kernel_is_exercised(emu, forced):
    """The parity runs above plan every padding_fold instantiation."""
    runs = [(c.name, "float32", False, -1, -1) for c in CASES]
    runs += [(n, d, False, -1, -1) for n in LOW_PRECISION for d in ("float16", "bfloat16")] + FORCED
    used = set()
    for name, dtype, index64, family, tile in runs:
        forced(index64, family, tile)
        case = BY_NAME[name]
        _, w, gy = _operands(case, dtype)
        plan = emu.plan("conv3d_grad_input", gy.shape, w.shape, dtype, case.x_shape(), **case.params())
        used |= {d["kernel"] for d in plan["dispatches"]}
    fold_kernels = {k for k in emu.kernel_names() if "_padding_fold_" in k}
    assert len(fold_kernels) == 6 and fold_kernels - used == set()  # 3 dtypes x 2 index widths


def _padded_cells(case):
    """Every position of the padded grid as a set of (d, h, w), from the
    forward's padding (zeros axes are not folded: their padding reads nothing)."""
    ranges = []
    for i in range(3):
        folds = case.modes[i] != "zeros"
        lo, hi = (case.pad_lo[i], case.pad_hi[i]) if folds else (0, 0)
        ranges.append(range(-lo, case.size[i] + hi))
    return {(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]}


@pytest.mark.parametrize("name", ["causal_replicate", "mixed", "zeros_axis"])
def test_plan_boxes_tile_the_shell(emu, name):
    """The boxes cover the padded shell (the padded grid less the input)
    exactly once; the scratch holds the largest; each box's phases write the
    scratch and its fold (last) adds the scratch into the result."""
    case = BY_NAME[name]
    _, w, gy = _operands(case, "float32")
    plan = emu.plan("conv3d_grad_input", gy.shape, w.shape, "float32", case.x_shape(), **case.params())
    cells = []
    for box in plan["fold_boxes"]:
        b, n = box["begin"], box["len"]
        cells += [
            (d, h, w)
            for d in range(b[0], b[0] + n[0])
            for h in range(b[1], b[1] + n[1])
            for w in range(b[2], b[2] + n[2])
        ]
    inside = {
        (d, h, w) for d in range(case.size[0]) for h in range(case.size[1]) for w in range(case.size[2])
    }
    assert len(cells) == len(set(cells)) and set(cells) == _padded_cells(case) - inside
    largest = max(int(np.prod(box["len"])) for box in plan["fold_boxes"])
    assert plan["scratch_bytes"] == case.n * largest * case.cin * 4
    families = [d["family"] for d in plan["dispatches"]]
    assert families.count("padding_fold") == len(plan["fold_boxes"])
    first_fold = families.index("padding_fold")
    main = [d for d in plan["dispatches"][:first_fold] if d["buffers"][2] == "result"]
    assert main and all(d["buffers"] == ["input", "weight", "result"] for d in main)
    for d in plan["dispatches"][len(main) :]:
        want = (
            ["scratch", "scratch", "result"]
            if d["family"] == "padding_fold"
            else ["input", "weight", "scratch"]
        )
        assert d["buffers"] == want
    assert families[-1] == "padding_fold"


def test_no_fold_without_mode_padding(emu):
    """Zero padding, or a mode with no padding, plans no box and no scratch."""
    for modes, pad in (("zeros", 1), ("reflect", 0)):
        out = 1 + 2 * pad
        plan = emu.plan("conv3d_grad_input", (1, out, out, out, 2), (2, 3, 3, 3, 2), "float32", (1, 3, 3, 3, 2),
                        pad_lo=t3(pad), pad_hi=t3(pad), padding_mode=t3(modes))  # fmt: skip
        assert plan["fold_boxes"] == [] and plan["scratch_bytes"] == 0
        assert all(d["family"] != "padding_fold" for d in plan["dispatches"])


def test_fold_takes_64bit_kernels_past_2_pow_31(emu):
    """A fold whose result passes 2^31 elements takes the "_large" kernel,
    even though its box (one W column) is small; 2^4 times smaller stays
    32-bit (planning only)."""

    def fold_kernels(d):
        x_shape, gy_shape = (1, 2**d, 2**10, 2**10, 2), (1, 2**d, 2**10, 2**10, 1)
        plan = emu.plan("conv3d_grad_input", gy_shape, (1, 1, 1, 3, 2), "float16", x_shape,
                        pad_lo=(0, 0, 1), pad_hi=(0, 0, 1), padding_mode=("zeros", "zeros", "reflect"))  # fmt: skip
        return [d["kernel"] for d in plan["dispatches"] if d["family"] == "padding_fold"]

    big, small = fold_kernels(10), fold_kernels(6)
    assert len(big) == len(small) == 2
    assert all(k.endswith("_large") for k in big) and not any(k.endswith("_large") for k in small)


# ---------------------------------------------------------------- mutants

# tests/emulator/mutants/fold/MUTANTS: each mutant and the case whose parity
# check must catch it.
MUTANT_CASES = {
    "reflect_high_off_by_one": "reflect_k3p1",
    "replicate_high_folds_to_low": "replicate_k3p1",
    "circular_drops_low_side": "circular_k3p1",
    "fold_overwrites_result": "mixed",
}


def test_every_fold_mutant_has_a_case():
    assert training_emulator.mutant_names("fold") == set(MUTANT_CASES)


@pytest.mark.parametrize("mutant", list(MUTANT_CASES))
def test_fold_mutants_are_caught(emu, mutant):
    """The parity check (float32) fails on a library built from the mutated
    fold kernel; the real kernels pass it (test_parity_float32)."""
    broken = training_emulator.mutant_emulator("fold", mutant)
    with pytest.raises(AssertionError, match="elements"):
        run_case(broken, BY_NAME[MUTANT_CASES[mutant]], "float32")


# ---------------------------------------------------------------- the Metal host (read, not run)


def test_host_allocates_the_scratch_and_binds_the_fold_params():
    """csrc/metal/conv_training.mm allocates plan.scratch_bytes, binds it for
    the scratch role, and passes a fold dispatch its own params."""
    root = Path(__file__).resolve().parents[1]
    host = re.sub(r"//[^\n]*", "", (root / "csrc" / "metal" / "conv_training.mm").read_text())
    assert re.search(r"plan\.scratch_bytes \? new_staging_buffer\(ctx, plan\.scratch_bytes", host)
    assert "case metal_plan::TrainingBuffer::scratch: return scratch;" in host
    assert re.search(
        r"if \(d\.family == metal_plan::TrainingFamily::padding_fold\)\s*\[encoder setBytes:&d\.fold "
        r"length:sizeof\(d\.fold\) atIndex:3\];",
        host,
    )
