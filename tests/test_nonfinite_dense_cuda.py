"""conv3d_grad_weight on the CUDA route's cuDNN path (a dense or grouped
problem) by the padding rule (README, "Differences from MLX and PyTorch"):
a NaN / inf output-gradient element whose window reaches the zero padding
makes every tap that reads padding there NaN (0 * inf = NaN), as on the CPU
and in torch. cuDNN's deterministic float32 engine, the one volconv keeps
for weight gradients, left those products out on the H200 (session 20);
csrc/cuda/dense_nonfinite.cu sets them. Against the float64 reference of
reference_training.py (it pads with zeros and multiplies). Skips without a
CUDA GPU."""

from __future__ import annotations

import numpy as np
import pytest
from reference_training import assert_close, assert_same_nonfinite, conv3d_grad_weight_reference

import volconv as vc

# (name, size, c_in, c_out, groups, stride, dilation)
CASES = {
    "dense": ((5, 6, 7), 8, 16, 1, (1, 1, 1), (1, 1, 1)),
    "grouped-strided-dilated": ((7, 8, 9), 8, 12, 2, (2, 1, 2), (1, 2, 1)),
}


def _operands(size, cin, cout, groups, stride, dilation, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *size, cin))
    out = [(n + 2 - dl * 2 - 1) // s + 1 for n, s, dl in zip(size, stride, dilation)]
    gy = rng.standard_normal((2, *out, cout))
    d, h, w = out
    # On the border along each axis (their windows reach the padding), a
    # corner, and one inside (meets no padding).
    for n, spot, ch, value in (
        (0, (0, h // 2, w // 2), 1, np.nan),
        (1, (d // 2, h - 1, w // 2), 4, np.inf),
        (0, (d // 2, h // 2, 0), 7, -np.inf),
        (1, (d - 1, h - 1, w - 1), 9, np.nan),
        (0, (d // 2, h // 2, w // 2), 11, np.inf),
    ):
        gy[(n, *spot, ch)] = value
    return x, gy


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES)
def test_cudnn_weight_gradient_multiplies_the_padding(case, dtype):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or vc._core._gpu_backend() != "cuda":
        pytest.skip(
            f"no CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu) or 'torch sees no CUDA device'}"
        )
    size, cin, cout, groups, stride, dilation = CASES[case]
    x, gy = (torch.from_numpy(a).to(getattr(torch, dtype)).cuda() for a in _operands(*CASES[case]))
    w_shape = (cout, 3, 3, 3, cin // groups)
    kw = dict(stride=stride, padding=1, dilation=dilation, groups=groups)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        got = vc.conv3d_grad_weight(x, gy, w_shape, **kw)
        torch.cuda.synchronize()
    ran = sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})
    if any(name.startswith("dw_") or "dw_wgrad" in name for name in ran):
        pytest.fail(f"expected the cuDNN route, got the depthwise kernels: {ran}")
    x64, gy64 = (a.double().cpu().numpy() for a in (x, gy))
    rk = dict(stride=stride, pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), dilation=dilation, groups=groups)
    ref = conv3d_grad_weight_reference(x64, gy64, w_shape, **rk)

    def finite(a):
        return np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0, neginf=0.0)

    scale = conv3d_grad_weight_reference(finite(x64), finite(gy64), w_shape, **rk)
    ours = got.double().cpu().numpy()
    what = f"cuda {case} {dtype}"
    assert_same_nonfinite(ours, ref, what)
    ok = np.isfinite(ref)
    assert ok.sum() > 0 and (~ok).sum() > 0, "the case must have both kinds of tap"
    assert_close(ours[ok], ref[ok], scale[ok], dtype, what)
