"""bfloat16 results are rounded once, to nearest even, NaNs quieted, on
every path and kernel set: the vectorised stores (AVX2, AVX-512F integer
lanes; vcvtneps2bf16 where the CPU has it) and the scalar one must give the
bits ml_dtypes gives for the exact sum. Each output here is the sum of two
bfloat16 products whose float32 sum is exact (two products of 8-bit
significands a few binades apart), so the store is the only rounding: ties
both ways, values that round up into the next binade and to infinity, NaN
and infinities."""

from __future__ import annotations

import numpy as np
import pytest

import volconv as vc

from conftest import cpu_plan

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = ml_dtypes.bfloat16

# (x0 * w0, x1 * w1) pairs as (x0, x1) with w = (1, 2^-k): the second term
# lands k binades below the first.
SPECIAL = [
    (1.0, 1.0, 8),  # 1 + 2^-8: a tie, stays at 1 (even)
    (1.0078125, 1.0, 8),  # (1 + 2^-7) + 2^-8: a tie, rounds up to 1 + 2^-6 (even)
    (-1.0078125, -1.0, 8),  # the same, negative
    (1.9921875, 1.0, 8),  # (2 - 2^-7) + 2^-8: a tie into the next binade: 2
    (1.0, 1.5, 8),  # above the tie: up
    (1.0, 0.5, 8),  # below the tie: down
    (3.3895313892515355e38, 0.5, -120),  # max bf16 + half an ulp: a tie, odd, rounds up to inf
    (3.3895313892515355e38, 0.25, -120),  # below that tie: stays at max bf16
    (3.3895313892515355e38, 1.0, -120),  # max bf16 + an ulp: float32 itself overflows to inf
    (np.inf, 1.0, 0),
    (-np.inf, 1.0, 0),
    (np.nan, 1.0, 0),
    (0.0, -0.0, 0),
]


def operands(n_random: int, seed: int = 0):
    """x (1, 1, 1, W, 2) and w (C_out, 1, 1, 1, 2) in bfloat16, W = the
    special rows then random ones (two products at most 9 binades apart:
    their float32 sum is exact)."""
    rng = np.random.default_rng(seed)
    rows = [(a, b) for a, b, _ in SPECIAL]
    shifts = [k for _, _, k in SPECIAL]
    for _ in range(n_random):
        rows.append((rng.uniform(1, 2) * rng.choice([-1, 1]), rng.uniform(1, 2) * rng.choice([-1, 1])))
        shifts.append(int(rng.integers(0, 9)))
    x = np.array(rows, np.float64).astype(BF16)
    return x, np.array(shifts)


def expected_bits(x, shifts, c_out):
    """The exact sum x0 + x1 * 2^-k rounded to bfloat16 by ml_dtypes, per
    output channel j (weights (1 + j/8, 2^-k(1 + j/8)) are bfloat16-exact)."""
    x64 = x.astype(np.float64)
    outs = []
    for j in range(c_out):
        s = 1 + j / 8
        with np.errstate(invalid="ignore", over="ignore"):
            exact = x64[:, 0] * s + x64[:, 1] * s * np.exp2(-shifts.astype(np.float64))
        with np.errstate(over="ignore"):  # the sums past float32's range are inf there too
            outs.append(exact.astype(np.float32).astype(BF16))  # exact in float32 by construction
    return np.stack(outs, axis=-1)


# Row paths (store_row): few-cin (C_in 2), small-cout (4 zero input channels
# more: C_in 6, C_out <= 4); the tile store (store_output_tile): small-cin
# (groups 2, one copy of the two channels per group).
CASES = [(1, 1, 0), (16, 1, 0), (21, 1, 0), (1, 1, 4), (3, 1, 4), (10, 2, 0), (32, 2, 0)]


def widen(xi, w, extra):
    """extra zero input channels, read with weight 1: the sums are unchanged."""
    if not extra:
        return xi, w
    zeros = np.zeros(xi.shape[:4] + (extra,), BF16)
    ones = np.ones(w.shape[:4] + (extra,), BF16)
    return np.concatenate([xi, zeros], axis=-1), np.concatenate([w, ones], axis=-1)


@pytest.mark.parametrize("c_out,groups,extra", CASES)
def test_bf16_store_bits(every_isa, c_out, groups, extra):
    x, shifts = operands(40)
    # One W position per row, each with its own shift: a 1x1x1 kernel whose
    # second weight differs per position cannot be expressed, so each shift
    # is its own call (positions with the same shift share one).
    for k in sorted(set(shifts.tolist())):
        rows = np.flatnonzero(shifts == k)
        xi = np.tile(x[rows].reshape(1, 1, 1, len(rows), 2), (1, 1, 1, 1, groups))
        scale = (1 + np.arange(c_out) % (c_out // groups) / 8)[:, None] * np.array([1.0, 2.0**-k])
        w = scale.reshape(c_out, 1, 1, 1, 2).astype(BF16)
        assert np.array_equal(w.astype(np.float64), scale.reshape(w.shape))  # exact weights
        xi, w = widen(xi, w, extra)
        y = vc.conv3d(xi, w, groups=groups)
        per_group = expected_bits(x[rows], shifts[rows], c_out // groups)
        want = np.tile(per_group, (1, groups)).reshape(y.shape)
        got_bits, want_bits = y.view(np.uint16), want.view(np.uint16)
        nan = np.isnan(want.astype(np.float32))
        assert np.array_equal(np.isnan(y.astype(np.float32)), nan)
        assert np.array_equal(got_bits[~nan], want_bits[~nan]), (
            f"{cpu_plan(xi, w, groups=groups)['name']} shift {k}: got {y.astype(np.float64)[~nan][:8]}, "
            f"want {want.astype(np.float64)[~nan][:8]}"
        )
        # A NaN stays NaN with its sign, quieted (bit 6 of the bfloat16 set).
        assert np.all(got_bits[nan] & 0x0040)


def test_the_cases_reach_row_and_tile_stores():
    x, _ = operands(0)
    xi = x[:4].reshape(1, 1, 1, 4, 2)
    paths = set()
    for c_out, groups, extra in CASES:
        xw = widen(np.tile(xi, (1, 1, 1, 1, groups)), np.ones((c_out, 1, 1, 1, 2), BF16), extra)
        paths.add(cpu_plan(*xw, groups=groups)["path"])
    assert paths == {"small-cout", "few-cin", "small-cin"}, paths


@pytest.mark.parametrize("groups,extra", [(1, 0), (1, 4), (2, 0)])
def test_nan_payloads_stay_nan(every_isa, groups, extra):
    """A float32 bias NaN whose payload fills the low bits (all ones: adding
    the rounding bias would carry into the sign and give -0; only the low
    half set: it would round to inf) must store a NaN of the same sign."""
    payloads = np.array([0x7FFFFFFF, 0xFFFFFFFF, 0x7F800001, 0x7FC00000], np.uint32)
    c_out = 8 * groups if extra == 0 else 4
    bias = np.zeros(c_out, np.uint32)
    bias[: len(payloads)] = payloads
    bias = bias.view(np.float32)
    x = np.ones((1, 1, 1, 5, 2 * groups), BF16)
    w = np.ones((c_out, 1, 1, 1, 2), BF16)
    x, w = widen(x, w, extra)
    y = vc.conv3d(x, w, groups=groups, bias=bias)
    assert y.dtype == BF16
    n = len(payloads)
    got = y.astype(np.float32)[..., :n]
    assert np.isnan(got).all(), got
    assert np.array_equal(np.signbit(got), np.broadcast_to(np.signbit(bias[:n]), got.shape))
