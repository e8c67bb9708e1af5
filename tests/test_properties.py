"""Property-based tests: random geometries against the reference, and random
(possibly invalid) parameters that must either compute the right answer or
raise ValueError / TypeError, never anything else."""

import numpy as np
import pytest

import volconv as vc

from reference import assert_conv_close

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

small = st.integers(1, 3)


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(small)
    c_out = groups * draw(small)
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(3))
    pad_lo = tuple(draw(st.integers(0, 2)) for _ in range(3))
    pad_hi = tuple(draw(st.integers(0, 2)) for _ in range(3))
    spatial = []
    for i in range(3):
        span = dilation[i] * (kernel[i] - 1) + 1
        low = max(1, span - pad_lo[i] - pad_hi[i])
        spatial.append(draw(st.integers(low, low + 4)))
    n = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from(["float32", "float64", "float16"]))
    return dict(
        x_shape=(n, *spatial, c_in),
        w_shape=(c_out, *kernel, c_in // groups),
        params=dict(stride=stride, pad_lo=pad_lo, pad_hi=pad_hi, dilation=dilation, groups=groups),
        dtype=dtype,
        seed=draw(st.integers(0, 2**31)),
    )


@settings(max_examples=80, deadline=None)
@given(geometries())
def test_random_geometries_match_reference(g):
    rng = np.random.default_rng(g["seed"])
    x = rng.uniform(-1, 1, g["x_shape"]).astype(g["dtype"])
    w = rng.uniform(-1, 1, g["w_shape"]).astype(g["dtype"])
    p = g["params"]
    y = vc.conv3d(
        x,
        w,
        stride=p["stride"],
        padding=(p["pad_lo"], p["pad_hi"]),
        dilation=p["dilation"],
        groups=p["groups"],
    )
    assert_conv_close(y, x, w, g["dtype"], **p)


any_int = st.integers(-3, 6)
triples = st.one_of(any_int, st.tuples(any_int, any_int, any_int))


@settings(max_examples=150, deadline=None)
@given(
    x_shape=st.tuples(*[st.integers(0, 4)] * 5),
    w_shape=st.tuples(*[st.integers(0, 4)] * 5),
    stride=triples,
    padding=triples,
    dilation=triples,
    groups=any_int,
)
def test_any_parameters_compute_or_raise_cleanly(x_shape, w_shape, stride, padding, dilation, groups):
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    try:
        y = vc.conv3d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    except ValueError as e:
        assert str(e).startswith("[conv3d]")
        return
    t3 = lambda v: v if isinstance(v, tuple) else (v, v, v)
    assert_conv_close(
        y,
        x,
        w,
        "float32",
        stride=t3(stride),
        pad_lo=t3(padding),
        pad_hi=t3(padding),
        dilation=t3(dilation),
        groups=groups,
    )
