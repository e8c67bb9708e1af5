"""Arrays whose elements sit at odd byte addresses (numpy views at an odd
offset into a byte buffer): every CPU path reads them with unaligned loads
and gives exactly the result of an aligned copy, which is checked against
the float64 reference. (The C++ parity test runs the same layout under
AddressSanitizer and UndefinedBehaviorSanitizer in CI.)"""

import numpy as np
import pytest

import volconv

from conftest import FLOAT_DTYPES, cast
from reference import assert_conv_close

# (input shape, weight shape, groups, padding): the float32 paths of
# test_nonfinite_weights, small.
SHAPES = [
    ((1, 4, 5, 6, 4), (4, 3, 3, 3, 1), 4, 1),
    ((1, 4, 5, 6, 1), (8, 3, 3, 3, 1), 1, 1),
    ((1, 4, 5, 9, 2), (8, 3, 3, 5, 2), 1, 2),
    ((1, 4, 5, 6, 4), (8, 3, 3, 3, 2), 2, 1),
    ((2, 4, 5, 6, 8), (16, 3, 3, 3, 8), 1, 1),
]


def misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of `a` whose first element is at an odd address."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    view = raw[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert view.ctypes.data % 2 == 1 and not view.flags.aligned
    return view


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=["depthwise", "cin1", "fold-w", "small-cin", "igemm"])
def test_unaligned_operands(shape, dtype):
    x_shape, w_shape, groups, padding = shape
    rng = np.random.default_rng(5)
    x = cast(rng.uniform(-1, 1, x_shape), dtype)
    w = cast(rng.uniform(-1, 1, w_shape), dtype)
    aligned = volconv.conv3d(x, w, padding=padding, groups=groups)
    y = volconv.conv3d(misaligned(x), misaligned(w), padding=padding, groups=groups)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(aligned))
    p = (padding,) * 3
    assert_conv_close(y, x, w, dtype, pad_lo=p, pad_hi=p, groups=groups)
