"""A NaN or infinite weight reaches every output whose window holds it, even
where its tap lies wholly in the padding: convolution with zero padding
multiplies the padding's zeros by it (0 * NaN = NaN, 0 * inf = NaN), as MLX
and torch's float64 path do (torch's float32 oneDNN path skips those taps
too, so the reference runs in float64). Checked on every CPU path, in every
dtype, on each kernel set this CPU runs."""

import numpy as np
import pytest

import volconv
from volconv import _core

from conftest import FLOAT_DTYPES, cast, cpu_plan

torch = pytest.importorskip("torch")

ISAS = [i for i in ("avx512f", "avx2", "neon", "generic") if i in _core._cpu_supported_isas()]

# (input shape, weight shape, groups, padding): one per CPU path in float32
# (the comment), other dtypes reach the gathered paths and the float64 loop.
SHAPES = {
    "depthwise": ((1, 5, 6, 7, 4), (4, 3, 3, 3, 1), 4, 1),
    "few-cin": ((1, 5, 6, 7, 1), (8, 3, 3, 3, 1), 1, 1),
    "fold-w": ((1, 5, 6, 9, 5), (9, 3, 3, 5, 5), 1, 2),
    "small-cin": ((1, 5, 6, 7, 4), (10, 3, 3, 3, 2), 2, 1),
    "small-cout": ((1, 5, 6, 7, 12), (4, 3, 3, 3, 12), 1, 1),
    "igemm": ((2, 5, 6, 7, 8), (16, 3, 3, 3, 8), 1, 1),
    "igemm-chunked": ((1, 4, 4, 4, 128), (16, 4, 4, 4, 128), 1, 2),
}


def poisoned_weight(shape, dtype, seed):
    """Random weights with a NaN, a +inf and a -inf at corner taps (the taps
    that lie wholly in the padding for the border outputs)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, shape)
    c_out, kd, kh, kw, _ = shape
    w[0, 0, 0, 0, 0] = np.nan
    w[c_out - 1, kd - 1, kh - 1, kw - 1, -1] = np.inf
    w[c_out // 2, 0, kh - 1, 0, 0] = -np.inf
    return cast(w, dtype)


def torch_conv(x, w, groups, padding):
    xt = torch.from_numpy(np.asarray(x, np.float64)).permute(0, 4, 1, 2, 3)
    wt = torch.from_numpy(np.asarray(w, np.float64)).permute(0, 4, 1, 2, 3)
    y = torch.nn.functional.conv3d(xt, wt, padding=padding, groups=groups)
    return y.permute(0, 2, 3, 4, 1).numpy()


@pytest.fixture(params=ISAS)
def isa(request):
    _core._cpu_force_isa(request.param)
    yield request.param
    _core._cpu_force_isa("")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", list(SHAPES))
def test_nan_and_inf_placement_matches_torch(isa, name, dtype):
    x_shape, w_shape, groups, padding = SHAPES[name]
    x = cast(np.random.default_rng(1).uniform(-1, 1, x_shape), dtype)
    w = poisoned_weight(w_shape, dtype, 2)
    y = np.asarray(volconv.conv3d(x, w, padding=padding, groups=groups), np.float64)
    plan = cpu_plan(x, w, padding=padding, groups=groups)
    if dtype == "float32":
        assert plan["path"] == name.split("-chunked")[0].replace("depthwise", "dwconv"), plan
    ref = torch_conv(x, w, groups, padding)
    assert np.isnan(ref).any() and np.isfinite(ref).any()  # the case poisons some outputs, not all
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref), err_msg=f"NaN positions ({plan['name']})")
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(y[finite], ref[finite], rtol=0.05, atol=0.05 * np.abs(ref[finite]).max())


def test_finite_weights_keep_their_results(isa):
    """The NaN pass changes nothing when every weight is finite, padding or not."""
    x_shape, w_shape, groups, padding = SHAPES["igemm"]
    x = np.random.default_rng(3).uniform(-1, 1, x_shape).astype(np.float32)
    w = np.random.default_rng(4).uniform(-1, 1, w_shape).astype(np.float32)
    y = volconv.conv3d(x, w, padding=padding, groups=groups)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, torch_conv(x, w, groups, padding), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_in_a_strided_weight(dtype):
    """A weight whose channels are not contiguous (Fortran order) is scanned element by element."""
    x_shape, w_shape, groups, padding = SHAPES["igemm"]
    x = cast(np.random.default_rng(1).uniform(-1, 1, x_shape), dtype)
    w = np.asfortranarray(poisoned_weight(w_shape, dtype, 2))
    assert not w.flags.c_contiguous
    y = np.asarray(volconv.conv3d(x, w, padding=padding, groups=groups), np.float64)
    ref = torch_conv(x, w, groups, padding)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(ref))
