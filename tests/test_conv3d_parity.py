"""The CPU path against the float64 reference over the shared geometry sweep,
every dtype, and the spellings of the parameters."""

import numpy as np
import pytest

import volconv as vc

from cases import CASES
from conftest import FLOAT_DTYPES, cast
from reference import assert_conv_close


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_match_reference(case, dtype):
    x, w = case.inputs()
    x, w = cast(x, dtype), cast(w, dtype)
    y = vc.conv3d(x, w, **case.api_kwargs())
    assert y.dtype == x.dtype
    assert_conv_close(y, x, w, dtype, **case.params())


@pytest.mark.parametrize(
    "in_dtype,w_dtype,expected",
    [
        ("float16", "bfloat16", "float32"),
        ("bfloat16", "float32", "float32"),
        ("float32", "float16", "float32"),
        ("float16", "float64", "float64"),
        ("float64", "float32", "float64"),
    ],
)
def test_mixed_dtypes_promote_like_mlx(in_dtype, w_dtype, expected):
    case = next(c for c in CASES if c.name == "groups2")
    x, w = case.inputs(1)
    x, w = cast(x, in_dtype), cast(w, w_dtype)
    y = vc.conv3d(x, w, **case.api_kwargs())
    assert str(y.dtype) == expected
    assert_conv_close(y, x, w, expected, **case.params())


def test_float64_is_computed_in_float64():
    # Terms that cancel exactly in float64 but not in float32.
    x = np.zeros((1, 1, 1, 2, 1))
    x[0, 0, 0, :, 0] = [1.0, 1e-9]
    w = np.ones((1, 1, 1, 2, 1))
    y = vc.conv3d(x + 1e8, w)
    assert y.dtype == np.float64
    assert y[0, 0, 0, 0, 0] == (1e8 + 1.0) + (1e8 + 1e-9)


@pytest.mark.parametrize(
    "kwargs,params",
    [
        (dict(stride=2), dict(stride=(2, 2, 2))),
        (dict(padding=1), dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))),
        (dict(padding=(1, 0, 2)), dict(pad_lo=(1, 0, 2), pad_hi=(1, 0, 2))),
        (dict(padding=((0, 1, 2), (2, 1, 0))), dict(pad_lo=(0, 1, 2), pad_hi=(2, 1, 0))),
        (dict(padding=[[0, 1, 2], [2, 1, 0]]), dict(pad_lo=(0, 1, 2), pad_hi=(2, 1, 0))),
        (dict(padding="valid"), dict()),
        (dict(dilation=(1, 2, 1), padding=1), dict(dilation=(1, 2, 1), pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))),
        (dict(stride=np.int64(2), groups=np.int32(2)), dict(stride=(2, 2, 2), groups=2)),
    ],
)
def test_parameter_spellings(kwargs, params):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 8, 4)).astype(np.float32)
    w = rng.standard_normal((6, 3, 3, 3, 4 // params.get("groups", 1))).astype(np.float32)
    assert_conv_close(vc.conv3d(x, w, **kwargs), x, w, "float32", **params)


@pytest.mark.parametrize(
    "kernel,dilation",
    [((3, 3, 3), (1, 1, 1)), ((2, 4, 1), (1, 1, 1)), ((3, 2, 5), (2, 3, 1))],
)
def test_same_padding_keeps_the_spatial_size_as_pytorch_defines_it(kernel, dilation):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 7, 8, 3)).astype(np.float32)
    w = rng.standard_normal((5, *kernel, 3)).astype(np.float32)
    y = vc.conv3d(x, w, padding="same", dilation=dilation)
    assert y.shape == (1, 6, 7, 8, 5)
    # PyTorch: total = dilation * (k - 1), the smaller half on the low side.
    lo = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    hi = tuple(d * (k - 1) - low for k, d, low in zip(kernel, dilation, lo))
    assert_conv_close(y, x, w, "float32", pad_lo=lo, pad_hi=hi, dilation=dilation)


def test_batch_zero_gives_empty_output_of_the_right_shape():
    x = np.zeros((0, 5, 6, 7, 4), np.float32)
    w = np.zeros((8, 3, 3, 3, 4), np.float32)
    y = vc.conv3d(x, w, stride=(1, 2, 1), padding=1)
    assert y.shape == (0, 5, 3, 7, 8) and y.dtype == np.float32


def test_nan_and_inf_propagate():
    x = np.ones((1, 4, 4, 4, 2), np.float32)
    x[0, 0, 0, 0, 0] = np.nan
    x[0, 3, 3, 3, 1] = np.inf
    w = np.ones((1, 2, 2, 2, 2), np.float32)
    y = vc.conv3d(x, w)
    assert np.isnan(y[0, 0, 0, 0, 0])
    assert np.isposinf(y[0, 2, 2, 2, 0])
    assert np.isfinite(y[0, 1, 1, 1, 0]) and y[0, 1, 1, 1, 0] == 16.0
