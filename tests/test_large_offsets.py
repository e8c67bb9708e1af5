"""Offsets past 2^31 elements (2^32 bytes) are computed in 64-bit: a 4 GiB
input that is mostly untouched zero pages (np.zeros maps them lazily), read
at a large stride so the work stays small."""

import numpy as np
import pytest

import volconv as vc

STEP = 2**24  # 32+ MiB apart: each write touches one (huge) page
W = 2**31 + STEP + 1  # the last output reads element 2^31 + 2^24


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_input_offsets_past_2_to_the_31(dtype):
    try:
        x = np.zeros((1, 1, 1, W, 1), dtype)
    except MemoryError:
        pytest.skip("cannot map a 4-8 GiB array here")
    positions = np.arange(0, W, STEP)
    # A basic strided slice touches only the pages it writes (fancy indexing
    # would touch all of them).
    x[0, 0, 0, ::STEP, 0] = (np.arange(len(positions)) % 1000 + 1).astype(dtype)
    w = np.full((2, 1, 1, 1, 1), 2, dtype)
    y = vc.conv3d(x, w, stride=(1, 1, STEP))
    assert y.shape == (1, 1, 1, len(positions), 2)
    expected = 2 * (np.arange(len(positions)) % 1000 + 1)
    np.testing.assert_array_equal(y[0, 0, 0, :, 0], expected)
    np.testing.assert_array_equal(y[0, 0, 0, :, 1], expected)
    assert positions[-1] > 2**31
