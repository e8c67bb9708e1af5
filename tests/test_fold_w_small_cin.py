"""C_in 5-7 (groups 1, f32, W dilation 1; C_out > 8 where the ISA has a narrow
row kernel, else any) folds the W window into K like
C_in <= 4 (fewer row pointers per tile: per-call overhead on tiny
convolutions). The kernel sums the same terms in the same order from +0
either way, so results are bit-identical to the in-place igemm, which a view
whose W stride is not C_in still takes; both are checked against the float64
reference too."""

import numpy as np
import pytest

import volconv

from conftest import cpu_plan
from reference import assert_conv_close

# (input shape, C_out, kernel, stride, padding); C_out > 8 (<= 4 is
# small-cout's, 5-8 few-cin's on AVX2)
CASES = [
    ((2, 5, 6, 9, 5), 11, (3, 3, 3), 1, 1),
    ((1, 4, 5, 11, 6), 9, (3, 3, 5), (1, 2, 2), (1, 1, 2)),
    ((1, 3, 4, 7, 7), 16, (2, 3, 2), 1, 0),
    ((1, 3, 6, 13, 5), 9, (1, 3, 3), (1, 1, 3), (0, 1, 1)),
]


@pytest.mark.parametrize("case", CASES, ids=[f"cin{c[0][4]}-{i}" for i, c in enumerate(CASES)])
def test_fold_w_matches_igemm_bitwise(case):
    shape, c_out, k, stride, padding = case
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, (c_out, *k, shape[4])).astype(np.float32)
    wide = np.zeros(shape[:4] + (shape[4] + 1,), np.float32)
    wide[..., : shape[4]] = x
    x_strided_w = wide[..., : shape[4]]  # channels contiguous, W stride C_in + 1
    kw = dict(stride=stride, padding=padding)
    assert cpu_plan(x, w, **kw)["path"] == "fold-w"
    assert cpu_plan(x_strided_w, w, **kw)["path"] == "igemm"
    y = np.asarray(volconv.conv3d(x, w, **kw))
    np.testing.assert_array_equal(y, np.asarray(volconv.conv3d(x_strided_w, w, **kw)))
    pad = (padding,) * 3 if isinstance(padding, int) else padding
    st = (stride,) * 3 if isinstance(stride, int) else stride
    assert_conv_close(y, x, w, "float32", pad_lo=pad, pad_hi=pad, stride=st)
