"""Cross-checks against PyTorch (every groups value) and MLX (groups == 1,
the only 3-D case MLX supports), when they are installed."""

import numpy as np
import pytest

import volconv as vc

from cases import CASES

TORCH_TOL = {"float32": (1e-4, 1e-4), "float64": (1e-10, 1e-10)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w = case.inputs(5)
    x, w = x.astype(dtype), w.astype(dtype)
    pads = [p for i in (2, 1, 0) for p in (case.pad_lo[i], case.pad_hi[i])]  # F.pad order: W, H, D
    xt = F.pad(torch.from_numpy(x).permute(0, 4, 1, 2, 3), pads)
    wt = torch.from_numpy(w).permute(0, 4, 1, 2, 3)
    expected = F.conv3d(xt, wt, stride=case.stride, dilation=case.dilation, groups=case.groups)
    y = vc.conv3d(x, w, **case.api_kwargs())
    rtol, atol = TORCH_TOL[dtype]
    np.testing.assert_allclose(y, expected.permute(0, 2, 3, 4, 1).numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", [c for c in CASES if c.groups == 1], ids=lambda c: c.name)
def test_matches_mlx(case, dtype):
    mx = pytest.importorskip("mlx.core")
    if case.pad_lo != case.pad_hi:
        pytest.skip("mlx.core.conv3d takes symmetric padding only")
    x, w = case.inputs(6)
    mdt = getattr(mx, dtype)
    xm, wm = mx.array(x).astype(mdt), mx.array(w).astype(mdt)
    expected = mx.conv3d(xm, wm, stride=case.stride, padding=case.pad_lo, dilation=case.dilation)
    y = vc.conv3d(xm, wm, stride=case.stride, padding=case.pad_lo, dilation=case.dilation)
    assert isinstance(y, mx.array) and y.dtype == mdt and y.shape == expected.shape
    # Both round once from a float32 accumulator: allow one result ulp and
    # the accumulation-order difference, relative to the output's magnitude.
    ulp = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]
    a = np.asarray(y.astype(mx.float32))
    b = np.asarray(expected.astype(mx.float32))
    scale = np.abs(b).max() + 1
    np.testing.assert_allclose(a, b, rtol=ulp, atol=ulp * scale)
