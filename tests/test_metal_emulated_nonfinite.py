"""Where a NaN / inf output-gradient element lands in the Metal weight
gradients (metal/conv_training_wgrad.metal), run through the MSL emulator
under every plan the training planner can be forced to: conv3d's weight
gradient multiplies the zero padding (0 * NaN = NaN, as torch and the CPU),
conv_general's and conv_transpose3d's leave it out (README, "Differences
from MLX and PyTorch"; the CPU's and CUDA's rule). Against the float64
references of reference_training.py: the non-finite masks equal, the finite
values close.

Session 21 found two bugs with this file (before the fixes: 15 of the 24
cases failed): the depthwise family skipped the padding, so conv3d's
depthwise weight gradient missed the NaN the multiply rule puts there (26
NaN against 72); the GEMM family multiplied every zero it gathers (padding
and inserted zeros), so conv_general's weight gradients put NaN where the
skip rule puts none (288 against 104 in the dense case). Fixed by
ConvTrainParams.multiply_zeros: the depthwise family multiplies where it is
set, the GEMM redoes a non-finite partial sum over real elements where it is
not. The transposed conv's cases passed before (its non-finite operand never
meets a zero in the problem's form)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator
import training_emulator
from reference_training import (
    assert_close,
    assert_same_nonfinite,
    conv3d_grad_weight_reference,
    conv_general_grad_weight_skip_reference,
    conv_transpose3d_grad_weight_skip_reference,
)

from conftest import cast, require_emulator

pytestmark = pytest.mark.metal_emulated
require_emulator()

# (op, c_in, c_out, groups, stride, input dilation, output_padding): kernel
# 3, padding 1, batch 2, input 4 x 5 x 6 (the transposed conv's output).
CASES = {
    "conv3d": ("conv3d_grad_weight", 4, 6, 1, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
    "conv3d-depthwise": ("conv3d_grad_weight", 8, 8, 8, (1, 2, 1), (1, 1, 1), (0, 0, 0)),
    "general": ("conv_general_grad_weight", 4, 6, 1, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
    "general-grouped-strided": ("conv_general_grad_weight", 4, 6, 2, (2, 1, 2), (1, 1, 1), (0, 0, 0)),
    "general-dilated": ("conv_general_grad_weight", 4, 6, 1, (1, 1, 1), (2, 1, 2), (0, 0, 0)),
    "general-depthwise": ("conv_general_grad_weight", 8, 8, 8, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
    "transpose": ("conv_transpose3d_grad_weight", 6, 4, 1, (2, 1, 2), (1, 1, 1), (1, 0, 1)),
    "transpose-depthwise": ("conv_transpose3d_grad_weight", 8, 8, 8, (1, 1, 1), (1, 1, 1), (0, 0, 0)),
}
SIZE = (4, 5, 6)


@pytest.fixture(scope="module")
def emu():
    return training_emulator.TrainingEmulator(msl_emulator.load_or_skip())


def _poison(a):
    """NaN / inf on each face of a (N, D, H, W, C) array (each element's
    windows reach the padding) and one inside."""
    n, d, h, w, c = a.shape
    for b, spot, ch, value in (
        (0, (0, h // 2, w // 2), 1 % c, np.nan),
        (1, (d // 2, h - 1, w // 2), 3 % c, np.inf),
        (0, (d // 2, h // 2, 0), 5 % c, -np.inf),
        (1, (d - 1, h - 1, w - 1), 2 % c, np.nan),
        (0, (d // 2, h // 2, w // 2), 0, np.inf),
    ):
        a[(b, *spot, ch)] = value
    return a


def _case(name, dtype):
    """(op, a, b, weight shape, emulator params, reference, scale): a and b
    rounded to dtype, as float64."""
    op, cin, cout, groups, stride, idil, out_pad = CASES[name]
    rng = np.random.default_rng(11)
    params = dict(
        stride=stride, pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), dilation=(1, 1, 1), groups=groups,
        output_padding=out_pad, input_dilation=idil, flip=False,
    )  # fmt: skip

    def rounded(a):
        return cast(a, dtype).astype(np.float64)

    def finite(a):
        return np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0, neginf=0.0)

    if op == "conv_transpose3d_grad_weight":
        # From the transposed conv's input x (cin channels, the NaN / inf:
        # its elements meet the cropped padding) to its output SIZE.
        in_size = [(n + 2 - 3 - p) // s + 1 for n, s, p in zip(SIZE, stride, out_pad)]
        x = rounded(_poison(rng.standard_normal((2, *in_size, cin))))
        g = rounded(rng.standard_normal((2, *SIZE, cout)))
        w_shape = (cout, 3, 3, 3, cin // groups)
        refs = [
            conv_transpose3d_grad_weight_skip_reference(a, b, w_shape, stride, (1, 1, 1), (1, 1, 1), groups)
            for a, b in ((x, g), (finite(x), finite(g)))
        ]
        return op, x, g, w_shape, params, *refs
    out = [((n - 1) * i + 1 + 2 - 3) // s + 1 for n, i, s in zip(SIZE, idil, stride)]
    x = rounded(rng.standard_normal((2, *SIZE, cin)))
    g = rounded(_poison(rng.standard_normal((2, *out, cout))))
    w_shape = (cout, 3, 3, 3, cin // groups)
    if op == "conv3d_grad_weight":
        kw = dict(stride=stride, pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=groups)
        refs = [
            conv3d_grad_weight_reference(a, b, w_shape, **kw) for a, b in ((x, g), (finite(x), finite(g)))
        ]
    else:
        refs = [
            conv_general_grad_weight_skip_reference(a, b, w_shape, stride, (1, 1, 1), (1, 1, 1), idil, groups)
            for a, b in ((x, g), (finite(x), finite(g)))
        ]
    return op, x, g, w_shape, params, *refs


def _plans(emu, op, a, b, w_shape, params):
    """Every (index64, family, tile) the planner can be forced to here."""
    base = emu.plan(op, a.shape, b.shape, "float32", w_shape, **params)
    plans = [(big, 0, t) for big in (False, True) for t in range(2)]
    if base["dispatches"][0]["family"] == "wgrad_depthwise":
        plans += [(big, 1, -1) for big in (False, True)]
    return plans


def _check_every_plan(emu, name, dtype):
    op, a, b, w_shape, params, ref, scale = _case(name, dtype)
    finite = np.isfinite(ref)
    assert finite.any() and (~finite).any(), "the case must have finite and non-finite results"
    try:
        for big, family, tile in _plans(emu, op, a, b, w_shape, params):
            emu.force(index64=big, family=family, tile=tile)
            got, _ = emu.run(op, a, b, dtype, w_shape, **params)
            what = f"metal {name} {dtype} (index64 {big}, family {family}, tile {tile})"
            assert_same_nonfinite(got, ref, what)
            assert_close(got[finite], ref[finite], scale[finite], dtype, what)
    finally:
        emu.force()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("name", CASES)
def test_weight_gradients_follow_the_rule(emu, name, dtype):
    _check_every_plan(emu, name, dtype)


# tests/emulator/mutants/nonfinite/MUTANTS: each mutant and the case that
# must catch it.
MUTANT_CASES = {
    "wgrad_gemm_keeps_multiplied_zeros": "general",
    "wgrad_depthwise_skips_padding": "conv3d-depthwise",
}


def test_every_nonfinite_mutant_has_a_case():
    assert training_emulator.mutant_names("nonfinite") == set(MUTANT_CASES)


@pytest.mark.parametrize("mutant", list(MUTANT_CASES))
def test_nonfinite_mutants_are_caught(emu, mutant):
    broken = training_emulator.mutant_emulator("nonfinite", mutant)
    with pytest.raises(AssertionError, match="differs from the reference"):
        _check_every_plan(broken, MUTANT_CASES[mutant], "float32")
    _check_every_plan(emu, MUTANT_CASES[mutant], "float32")
