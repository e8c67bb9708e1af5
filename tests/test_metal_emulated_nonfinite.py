"""NaN and infinite weights on the Metal kernels (run through the MSL
emulator): like torch, a NaN weight reaches every output whose window holds
its tap, even where the tap lies wholly in the padding (0 * NaN = NaN).
Checked against the zero-padding float64 reference."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator

from cases import _c
from conftest import cast
from reference import conv3d_reference

pytestmark = pytest.mark.metal_emulated

CASES = [
    _c("small_cin", 1, 4, 6, 20, 1, 16, 3, p=1),
    _c("gemm", 1, 3, 5, 6, 16, 48, 3, p=1),
    _c("pointwise_pad", 1, 5, 5, 5, 8, 8, 1, s=2, p=1),
    _c("depthwise", 1, 5, 5, 6, 4, 4, 5, p=2, g=4),
    _c("depthwise_tail", 1, 3, 4, 5, 36, 36, 3, s=(1, 2, 1), p=1, g=36),
]


@pytest.fixture(scope="module")
def emu() -> msl_emulator.Emulator:
    return msl_emulator.load_or_skip()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_nan_and_inf_placement(emu, case, dtype):
    x, w = case.inputs()
    w = np.array(w, np.float64)
    c_out, kd, kh, kw, _ = w.shape
    w[0, 0, 0, 0, 0] = np.nan
    w[c_out - 1, kd - 1, kh - 1, kw - 1, -1] = np.inf
    y, _ = emu.conv3d(x, w, dtype, **case.params())
    ref = conv3d_reference(
        cast(x, dtype).astype(np.float64), cast(w, dtype).astype(np.float64), **case.params()
    )
    assert np.isnan(ref).any() and np.isfinite(ref).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
