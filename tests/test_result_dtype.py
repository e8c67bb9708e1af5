"""The result's kind is the input's and its dtype the promotion of the two
operands' dtypes, for every pair of array kinds (numpy, torch, mlx). The
promotion table is torch.promote_types (MLX's agrees for these four)."""

from __future__ import annotations

import numpy as np
import pytest

import volconv as vc

from conftest import FLOAT_DTYPES, cast
from reference import assert_conv_close

torch = pytest.importorskip("torch")
mx = pytest.importorskip("mlx.core")

KINDS = ["numpy", "torch", "mlx"]
RNG = np.random.default_rng(5)
X = RNG.standard_normal((1, 3, 4, 5, 2))
W = RNG.standard_normal((3, 2, 2, 2, 2))


def make(a: np.ndarray, kind: str, dtype: str):
    """`a` rounded to `dtype`, as a `kind` array."""
    if kind == "numpy":
        return cast(a, dtype)
    if kind == "torch":
        return torch.from_numpy(a).to(getattr(torch, dtype))
    # mx.array(float64 numpy) narrows to float32: say the dtype.
    return mx.array(a.astype(np.float32) if dtype == "bfloat16" else a, dtype=getattr(mx, dtype))


def kind_and_dtype(y) -> tuple[str, str]:
    if isinstance(y, np.ndarray):
        return "numpy", y.dtype.name
    if isinstance(y, torch.Tensor):
        return "torch", str(y.dtype).replace("torch.", "")
    if isinstance(y, mx.array):
        return "mlx", str(y.dtype).replace("mlx.core.", "")
    raise AssertionError(f"unexpected result type {type(y)}")


def as_float64(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        return y.double().numpy()
    if isinstance(y, mx.array):
        return np.array(y.astype(mx.float64))
    return np.asarray(y, dtype=np.float64)


@pytest.mark.parametrize("x_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("w_dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_kind", KINDS)
@pytest.mark.parametrize("w_kind", KINDS)
def test_result_kind_and_promoted_dtype(x_kind, w_kind, x_dtype, w_dtype):
    x, w = make(X, x_kind, x_dtype), make(W, w_kind, w_dtype)
    y = vc.conv3d(x, w, padding=1)
    promoted = str(torch.promote_types(getattr(torch, x_dtype), getattr(torch, w_dtype))).replace(
        "torch.", ""
    )
    assert kind_and_dtype(y) == (x_kind, promoted)
    # The values too: a float64 result narrowed on the way out would miss
    # float64's bound by ~1e-8.
    assert_conv_close(as_float64(y), as_float64(x), as_float64(w), promoted, pad_lo=(1,) * 3, pad_hi=(1,) * 3)
