"""volconv::activation_backward (volconv/epilogue.h), the backward of conv3d's
fused activation that volconv.mlx's primitive runs: grad * act'(pre) against
PyTorch's own backward kernels (silu_backward, gelu_backward with
approximate="tanh", threshold_backward) in float64, NaN/inf placement
included, for every dtype and for strided views."""

from __future__ import annotations

import numpy as np
import pytest

from volconv import _core
from volconv._arrays import as_operand

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)
ACTS = ["relu", "silu", "gelu_tanh"]


def torch_backward(act: str, pre: np.ndarray, grad: np.ndarray, dtype=np.float64) -> np.ndarray:
    z, g = torch.from_numpy(pre.astype(dtype)), torch.from_numpy(grad.astype(dtype))
    if act == "relu":
        out = torch.ops.aten.threshold_backward(g, z, 0.0)
    elif act == "silu":
        out = torch.ops.aten.silu_backward(g, z)
    else:
        out = torch.ops.aten.gelu_backward(g, z, approximate="tanh")
    return out.numpy()


def ours(act: str, pre, grad):
    p, g = as_operand(pre, "activation_backward", "pre"), as_operand(grad, "activation_backward", "grad")
    out = np.asarray(
        _core._activation_backward(getattr(_core.Activation, act), p.storage, p.dtype, g.storage, g.dtype)
    )
    return out.view(grad.dtype)  # bfloat16 comes back as its uint16 storage


def values(shape, scale=4.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_torch_backward(act, dtype):
    # Wide values: the exp's range ends (|x| > 88) and silu/gelu's tails.
    pre = np.concatenate([values((2, 3, 4, 5, 7)).ravel(), np.linspace(-120, 120, 97, dtype=np.float32)])
    pre = np.resize(pre, (2, 3, 4, 5, 9)).astype(dtype)
    grad = values(pre.shape, 1.0).astype(dtype)
    got = ours(act, pre, grad)
    want = torch_backward(act, pre, grad)
    assert got.dtype == np.dtype(dtype)
    # gelu's 1 + tanh(u) cancels for negative u: an ulp of tanh shows there, so
    # the bound is absolute too (grad is O(1)).
    f32 = dtype == "float32"
    np.testing.assert_allclose(got, want, rtol=2e-6 if f32 else 1e-13, atol=1e-5 if f32 else 1e-13)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_placement_is_torchs(act, dtype):
    # Against torch in the same dtype: where exp overflows (x = -100 in
    # float32) torch's sigmoid is 0 and inf * 0 is NaN; in float64 it is not.
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 100.0, -100.0, -1000.0], dtype)
    pre, grad = np.meshgrid(specials, specials, indexing="ij")
    pre, grad = pre.reshape(1, 1, 10, 10, 1), grad.reshape(1, 1, 10, 10, 1)
    got = ours(act, pre, grad)
    want = torch_backward(act, pre, grad, dtype)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (pre[np.isnan(got) != np.isnan(want)],)
    assert np.array_equal(np.isposinf(got), np.isposinf(want))
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_views_round_the_float32_result(act, dtype):
    import ml_dtypes

    np_dtype = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    pre, grad = values((1, 2, 3, 4, 8)).astype(np_dtype), values((1, 2, 3, 4, 8), 1.0).astype(np_dtype)
    got = ours(act, pre, grad)
    assert got.dtype == np.dtype(np_dtype)
    want = torch_backward(act, pre.astype(np.float32), grad.astype(np.float32)).astype(np_dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("act", ["silu", "gelu_tanh"])
def test_strided_and_mixed_dtype_views(act):
    # A channel slice (strided rows) and a float64 grad beside a float32 pre:
    # the general path, computed in float64, the result in grad's dtype.
    base = values((2, 3, 4, 5, 12))
    pre = base[..., 2:9]
    grad = values((2, 3, 4, 5, 7), 1.0).astype(np.float64)
    got = ours(act, pre, grad)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, torch_backward(act, pre, grad), rtol=1e-12, atol=1e-13)


def test_mismatched_shapes_are_refused():
    with pytest.raises(
        ValueError, match=r"\[activation_backward\] Expected pre, grad and grad_pre of one shape"
    ):
        ours("silu", values((1, 2, 3, 4, 5)), values((1, 2, 3, 4, 6)))


def ours_forward(act: str, pre, residual=None):
    op = "activation_forward"
    p = as_operand(pre, op, "pre")
    r = as_operand(residual, op, "residual") if residual is not None else None
    out = _core._activation_forward(
        getattr(_core.Activation, act),
        p.storage,
        p.dtype,
        r.storage if r else None,
        r.dtype if r else p.dtype,
    )
    return np.asarray(out).view(pre.dtype)


TORCH_FORWARD = {
    "relu": lambda t: torch.relu(t),
    "silu": lambda t: torch.nn.functional.silu(t),
    "gelu_tanh": lambda t: torch.nn.functional.gelu(t, approximate="tanh"),
}


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_residual", [False, True])
def test_forward_matches_torch(act, dtype, with_residual):
    """activation_forward (the primitive's pass after a conv3d that keeps its
    pre-activation): act(pre) + residual against torch in float64, the
    specials included (NaN, +-inf, the exp range's ends)."""
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 100.0, -100.0, -1000.0], np.float32)
    pre = np.resize(np.concatenate([specials, values((2, 3, 4, 5, 7)).ravel()]), (2, 3, 4, 5, 9)).astype(
        dtype
    )
    residual = values(pre.shape, 1.0).astype(dtype) if with_residual else None
    got = ours_forward(act, pre, residual)
    want = TORCH_FORWARD[act](torch.from_numpy(pre.astype(np.float64))).numpy()
    if with_residual:
        want = want + residual.astype(np.float64)
    assert got.dtype == np.dtype(dtype)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(
        got[finite], want[finite], rtol=3e-6 if dtype == "float32" else 1e-13, atol=1e-6
    )


def test_forward_with_a_strided_16_bit_residual():
    import ml_dtypes

    pre = values((1, 2, 3, 4, 6))
    base = values((1, 2, 3, 4, 12), 1.0).astype(ml_dtypes.bfloat16)
    residual = base[..., ::2]  # strided channels, another dtype: the general path
    got = ours_forward("silu", pre, residual)
    want = torch.nn.functional.silu(torch.from_numpy(pre.astype(np.float64))).numpy() + residual.astype(
        np.float64
    )
    np.testing.assert_allclose(got, want, rtol=3e-6, atol=1e-6)
