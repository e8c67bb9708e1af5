"""The epilogue's float32 silu and gelu_tanh (a polynomial exp, vectorised;
csrc/cpu/activation_f32.cpp) against their float64 definitions, value by
value, over the whole float range and the special values, on every ISA this
machine can force: a depthwise 1x1x1 conv with unit weights makes the
pre-activation exactly the input (no channel meets another's inf or NaN)."""

from __future__ import annotations

import numpy as np
import pytest

import volconv
from volconv import _core

ISAS = [i for i in ("avx512bf16", "avx512f", "avx2", "neon", "generic") if i in _core._cpu_supported_isas()]


def silu(v):
    return v / (1.0 + np.exp(-v))


def gelu_tanh(v):
    """0.5 v (1 + tanh(u)) as v * sigmoid(2u) (the same function): float64's
    tanh rounds to -1 for u < -19, where the value is still a float32."""
    u = np.sqrt(2.0 / np.pi) * (v + 0.044715 * v**3)
    return v / (1.0 + np.exp(-2.0 * u))


def points() -> np.ndarray:
    """Dense in [-20, 20], log-spaced out to 3e38 both ways, near exp's
    limits (|x| about 87-89), and 0, +-inf, NaN."""
    dense = np.linspace(-20, 20, 4001)
    far = np.geomspace(1e-30, 3e38, 400)
    edges = np.linspace(86, 90, 401)
    v = np.concatenate([dense, far, -far, edges, -edges, [0.0, -0.0, np.inf, -np.inf, np.nan]])
    return v.astype(np.float32)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
def test_activation_matches_float64_definition(isa, activation):
    v = points()
    c = 40  # values per output position: vector bodies and a tail
    v = np.concatenate([v, np.zeros((-v.size) % c, np.float32)])
    x = v.reshape(1, 1, 1, -1, c)
    w = np.ones((c, 1, 1, 1, 1), np.float32)
    _core._cpu_force_isa(isa)
    try:
        y = np.asarray(volconv.conv3d(x, w, groups=c, activation=activation)).reshape(-1)
    finally:
        _core._cpu_force_isa("")
    with np.errstate(over="ignore", invalid="ignore"):  # -inf / inf: NaN, as float32's
        v64 = v.astype(np.float64)
        f = silu if activation == "silu" else gelu_tanh
        ref = f(v64)
        # |x f'(x)|: how far a few float32 roundings of the argument (x, u)
        # move the value; gelu's far negative tail is steep (u ~ x^3).
        h = 1e-6 * np.abs(v64) + 1e-30
        slope = np.abs(v64 * (f(v64 + h) - f(v64 - h)) / (2 * h))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref), err_msg=f"NaN pattern, {activation} {isa}")
    ok = ~np.isnan(ref)
    # A few float32 ulps of the result and of the argument; near 0, float32
    # underflows (results below ~1e-36 may round to 0).
    bound = 4e-7 * np.abs(ref[ok]) + 4e-7 * np.nan_to_num(slope[ok]) + 1e-36
    got = y[ok].astype(np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf
        bad = ~((got == ref[ok]) | (np.abs(got - ref[ok]) <= bound))  # == for the infinities
    assert not bad.any(), (
        f"{activation} {isa}: {int(bad.sum())} values off; first x = {v[ok][bad][0]!r}: "
        f"got {y[ok][bad][0]!r}, float64 {ref[ok][bad][0]!r}"
    )
