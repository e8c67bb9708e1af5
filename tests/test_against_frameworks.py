"""Cross-checks against PyTorch (every groups value) and MLX (groups == 1,
the only 3-D case MLX supports), when they are installed."""

import numpy as np
import pytest

import volconv as vc

from cases import CASES
from reference import assert_conv_agree


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
    assert_conv_agree(y, expected.permute(0, 2, 3, 4, 1).numpy(), x, w, dtype, **case.params())


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
    f32 = lambda a: np.asarray(a.astype(mx.float32))
    assert_conv_agree(f32(y), f32(expected), f32(xm), f32(wm), dtype, **case.params())
