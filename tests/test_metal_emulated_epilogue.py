"""conv3d's padding modes and fused epilogue in the Metal kernels, run through
the MSL emulator (tests/emulator) exactly as the planner plans them, against
"np.pad with the mode, float64 conv, + bias, activation, + residual": each
kernel family, each mode (and a mix per axis), with asymmetric causal padding
((2, 1, 1), (0, 1, 1)), in every dtype. Emulator only: never run on a Mac."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator
import training_emulator

from conftest import cast, require_emulator
from reference import TOLERANCE, conv3d_reference

pytestmark = pytest.mark.metal_emulated
require_emulator()

DTYPES = ["float32", "float16", "bfloat16"]
ACTIVATIONS = [None, "relu", "silu", "gelu_tanh"]
CAUSAL = ((2, 1, 1), (0, 1, 1))
MODES = {
    "zeros": ("zeros",) * 3,
    "reflect": ("reflect",) * 3,
    "replicate": ("replicate",) * 3,
    "circular": ("circular",) * 3,
    "mixed": ("replicate", "reflect", "circular"),
}
NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

# One small problem per kernel family (the planner's choice is asserted):
# (input shape, weight shape, groups). Sizes leave tails in M and C_out.
FAMILIES = {
    "gemm": ((1, 3, 4, 5, 8), (12, 3, 3, 3, 8), 1),
    "pointwise": ((1, 3, 3, 4, 8), (10, 1, 1, 1, 8), 1),
    "small_cin": ((1, 3, 3, 16, 2), (9, 3, 3, 3, 2), 1),
    "depthwise": ((1, 3, 4, 5, 8), (8, 3, 3, 3, 1), 8),
}


@pytest.fixture(scope="module")
def emu():
    return msl_emulator.load_or_skip()


def activate(v: np.ndarray, name: str | None) -> np.ndarray:
    """float64, from the definitions (GELU with tanh, not the kernels' sigmoid form)."""
    if name is None:
        return v
    if name == "relu":
        return np.maximum(v, 0.0)
    if name == "silu":
        return v / (1.0 + np.exp(-v))
    return 0.5 * v * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * v**3)))


def pad(x: np.ndarray, modes, pad_lo, pad_hi) -> np.ndarray:
    """x (N, D, H, W, C) padded axis by axis with numpy's mode for each."""
    for axis in range(3):
        width = [(0, 0)] * 5
        width[1 + axis] = (pad_lo[axis], pad_hi[axis])
        x = np.pad(x, width, mode=NUMPY_MODE[modes[axis]])
    return x


def operands(family: str, dtype: str, seed: int):
    x_shape, w_shape, groups = FAMILIES[family]
    rng = np.random.default_rng(seed)
    x = cast(rng.uniform(-1, 1, x_shape), dtype).astype(np.float64)
    k = int(np.prod(w_shape[1:]))
    # Scaled so the conv is of order 1: the activations' curved parts are exercised.
    w = cast(rng.uniform(-1, 1, w_shape) * (3.0 / np.sqrt(k)), dtype).astype(np.float64)
    bias = cast(rng.uniform(-1, 1, w_shape[0]), dtype).astype(np.float64)
    out_shape = conv3d_reference(
        np.zeros(x_shape), np.zeros(w_shape), pad_lo=CAUSAL[0], pad_hi=CAUSAL[1], groups=groups
    ).shape
    residual = cast(rng.uniform(-1, 1, out_shape), dtype).astype(np.float64)
    return x, w, groups, bias, residual


def check(y, x, w, groups, dtype, modes, bias=None, activation=None, residual=None):
    """|y - expected| within the dtype's tolerance of everything that carries
    rounding: the conv's terms (times the activation's slope, at most 1.13
    for GELU), the bias, the residual and the result."""
    xp = pad(x, modes, *CAUSAL)
    pre = conv3d_reference(xp, w, groups=groups)
    scale = conv3d_reference(np.abs(xp), np.abs(w), groups=groups)
    if bias is not None:
        pre, scale = pre + bias, scale + np.abs(bias)
    expected = activate(pre, activation)
    scale = 1.2 * scale
    if residual is not None:
        expected, scale = expected + residual, scale + np.abs(residual)
    bound = TOLERANCE[dtype] * (scale + np.abs(expected)) + 1e-30
    assert y.shape == expected.shape
    bad = ~(np.abs(y - expected) <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {y.size} elements off ({dtype}, {modes}, {activation}); first at {i}: "
            f"got {y[i]!r}, expected {expected[i]!r}, allowed {bound[i]:.3g}"
        )


def run_fused(emu, family, dtype, mode, activation, seed=0, with_bias=True, with_residual=True):
    x, w, groups, bias, residual = operands(family, dtype, seed)
    modes = MODES[mode]
    b = bias if with_bias else None
    r = residual if with_residual else None
    y = emu.conv3d_fused(
        x,
        w,
        dtype,
        pad_lo=CAUSAL[0],
        pad_hi=CAUSAL[1],
        padding_mode=modes,
        bias=b,
        activation=activation,
        residual=r,
        groups=groups,
    )
    check(y, x, w, groups, dtype, modes, bias=b, activation=activation, residual=r)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_is_planned(emu, family):
    x_shape, w_shape, groups = FAMILIES[family]
    plan = emu.plan(x_shape, w_shape, "float32", pad_lo=CAUSAL[0], pad_hi=CAUSAL[1], groups=groups)
    assert plan["family"] == family


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_mode_and_full_epilogue(emu, family, mode, dtype):
    """Bias, an activation (a different one per mode and dtype) and a
    residual, fused, on each family, padding mode and dtype."""
    activation = ACTIVATIONS[(list(MODES).index(mode) + DTYPES.index(dtype)) % len(ACTIVATIONS)]
    run_fused(emu, family, dtype, mode, activation, seed=list(MODES).index(mode))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_activation_alone(emu, family, activation):
    """The activation without bias or residual (their flags off), float32."""
    run_fused(emu, family, "float32", "replicate", activation, seed=7, with_bias=False, with_residual=False)


def test_large_index_kernels_read_modes_and_epilogue(emu):
    """The 64-bit ("_large") instantiations share the loaders and the store."""
    emu.force_64bit_index(True)
    try:
        for family in FAMILIES:
            run_fused(emu, family, "float32", "mixed", "gelu_tanh", seed=11)
    finally:
        emu.force_64bit_index(False)


def check_activation_limits(emulator) -> None:
    """Large |pre-activation| (exp overflowing) gives silu's and gelu's limits,
    x and -0, never NaN, as on the CPU (a depthwise 1x1x1 conv of zeros plus
    the bias)."""
    x = np.zeros((1, 1, 1, 16, 4))
    w = np.zeros((4, 1, 1, 1, 1))
    bias = np.array([200.0, -200.0, 90.0, -90.0])
    for activation in ("silu", "gelu_tanh"):
        y = emulator.conv3d_fused(x, w, "float32", bias=bias, activation=activation, groups=4)
        assert np.isfinite(y).all(), f"{activation}: not finite"
        np.testing.assert_array_equal(y[..., 0], 200.0)
        np.testing.assert_array_equal(y[..., 1], 0.0)


def test_activation_limits_are_finite(emu):
    check_activation_limits(emu)


# ---------------------------------------------------------------- the weight gradient

# conv3d's weight gradient reads the input through the forward pass's padding
# modes (its input gradient with a mode: test_metal_emulated_padding_grad.py).
WGRAD_FAMILIES = {
    "wgrad_gemm": ((1, 3, 4, 5, 8), (12, 3, 3, 3, 8), 1),
    "wgrad_depthwise": ((1, 3, 4, 5, 8), (8, 3, 3, 3, 1), 8),
}


def weight_grad_reference(xp, dy, w_shape, groups):
    """float64 dW[co, a, b, c, ci] = sum over positions of dy * the padded input
    the tap read, written from the definition (stride and dilation 1)."""
    c_out, kd, kh, kw, c_in_g = w_shape
    n, do, ho, wo, _ = dy.shape
    xg = xp.reshape(xp.shape[:4] + (groups, c_in_g))
    dyg = dy.reshape(n, do, ho, wo, groups, c_out // groups)
    dw = np.zeros((groups, c_out // groups, kd, kh, kw, c_in_g))
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                window = xg[:, a : a + do, b : b + ho, c : c + wo]
                dw[:, :, a, b, c, :] = np.einsum("ndhwgc,ndhwgo->goc", window, dyg)
    return dw.reshape(w_shape)


def run_wgrad(emulator, family, dtype, mode, seed=0):
    x_shape, w_shape, groups = WGRAD_FAMILIES[family]
    rng = np.random.default_rng(seed)
    x = cast(rng.uniform(-1, 1, x_shape), dtype).astype(np.float64)
    y_shape = conv3d_reference(
        np.zeros(x_shape), np.zeros(w_shape), pad_lo=CAUSAL[0], pad_hi=CAUSAL[1], groups=groups
    ).shape
    dy = cast(rng.uniform(-1, 1, y_shape), dtype).astype(np.float64)
    train = training_emulator.TrainingEmulator(emulator)
    params = {"pad_lo": CAUSAL[0], "pad_hi": CAUSAL[1], "groups": groups, "padding_mode": MODES[mode]}
    assert (
        train.plan("conv3d_grad_weight", x_shape, y_shape, dtype, w_shape, **params)["dispatches"][0][
            "family"
        ]
        == family
    )
    dw, _ = train.run("conv3d_grad_weight", x, dy, dtype, w_shape, **params)
    xp = pad(x, MODES[mode], *CAUSAL)
    expected = weight_grad_reference(xp, dy, w_shape, groups)
    bound = TOLERANCE[dtype] * (
        weight_grad_reference(np.abs(xp), np.abs(dy), w_shape, groups) + np.abs(expected)
    )
    bad = ~(np.abs(dw - expected) <= bound + 1e-30)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {dw.size} elements off ({dtype}, {mode}); first at {i}: "
            f"got {dw[i]!r}, expected {expected[i]!r}, allowed {bound[i]:.3g}"
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("family", list(WGRAD_FAMILIES))
def test_weight_gradient_reads_the_mode(emu, family, mode, dtype):
    run_wgrad(emu, family, dtype, mode, seed=list(MODES).index(mode))


# ---------------------------------------------------------------- mutants

# tests/emulator/mutants/epilogue/MUTANTS: each mutant and the (family, mode,
# activation) whose check must catch it.
MUTANT_CASES = {
    "reflect_repeats_the_edge": ("depthwise", "reflect", None),
    "circular_wraps_short": ("depthwise", "circular", None),
    "gemm_ignores_the_mode": ("gemm", "replicate", None),
    "pointwise_ignores_the_mode": ("pointwise", "mixed", None),
    "small_cin_ignores_the_mode": ("small_cin", "mixed", None),
    "depthwise_ignores_the_mode": ("depthwise", "replicate", None),
    "gelu_wrong_cubic": ("depthwise", "zeros", "gelu_tanh"),
    "residual_before_activation": ("depthwise", "zeros", "relu"),
    "wgrad_ignores_the_mode": ("wgrad_gemm", "reflect", None),
    "silu_overflows_to_nan": ("limits", None, "silu"),
}


def mutant_names() -> list[str]:
    text = (Path(__file__).resolve().parent / "emulator" / "mutants" / "epilogue" / "MUTANTS").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return lines[::6]


def test_every_epilogue_mutant_has_a_case():
    assert set(mutant_names()) == set(MUTANT_CASES)


@pytest.mark.parametrize("mutant", list(MUTANT_CASES))
def test_epilogue_mutants_are_caught(emu, mutant):
    """The same check (float32) fails on a library built from the mutated
    kernel source; the real kernels pass it."""
    family, mode, activation = MUTANT_CASES[mutant]
    library = msl_emulator.library_path(f"msl_emulator_epilogue_mutant_{mutant}")
    broken = msl_emulator.Emulator(library)
    if family == "limits":
        with pytest.raises(AssertionError, match="not finite"):
            check_activation_limits(broken)
        check_activation_limits(emu)
        return
    run = run_wgrad if family in WGRAD_FAMILIES else run_fused
    extra = () if family in WGRAD_FAMILIES else (activation,)
    with pytest.raises(AssertionError, match="elements off"):
        run(broken, family, "float32", mode, *extra, seed=5)
    run(emu, family, "float32", mode, *extra, seed=5)
