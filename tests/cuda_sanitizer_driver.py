"""Runs every CUDA depthwise kernel once on small shapes (host arrays with a
GPU stream, so no other library's kernels run), for compute-sanitizer:
  compute-sanitizer --tool memcheck --error-exitcode 1 python tests/cuda_sanitizer_driver.py
  compute-sanitizer --tool racecheck --error-exitcode 1 python tests/cuda_sanitizer_driver.py
Each result is also checked against the float64 reference, so a silent
wrong answer under the sanitizer fails too."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cuda_cases import CASES, output_size  # noqa: E402
from reference_training import (  # noqa: E402
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
)

import volconv as vc  # noqa: E402

from reference import conv3d_reference  # noqa: E402

DTYPES = {"float32": np.float32, "float16": np.float16}
try:
    import ml_dtypes

    DTYPES["bfloat16"] = ml_dtypes.bfloat16
except ImportError:  # bfloat16 then runs in the pytest suite only
    print("cuda_sanitizer_driver: no ml_dtypes, bfloat16 left out")


def main() -> None:
    rng = np.random.default_rng(0)
    s = vc.default_stream(vc.gpu)
    runs = 0
    for case in CASES:
        n, size, c, k, st, (lo, hi), d = case
        kw = dict(stride=st, padding=(lo, hi), dilation=d, groups=c)
        rk = dict(stride=st, pad_lo=lo, pad_hi=hi, dilation=d, groups=c)
        for name, dt in DTYPES.items():
            x = rng.standard_normal((n, *size, c)).astype(dt)
            w = rng.standard_normal((c, *k, 1)).astype(dt)
            gy = rng.standard_normal((n, *output_size(size, k, st, lo, hi, d), c)).astype(dt)
            x64, w64, g64 = (a.astype(np.float64) for a in (x, w, gy))
            y = vc.conv3d(x, w, stream=s, **kw)
            assert_close(
                y, conv3d_reference(x64, w64, **rk), conv3d_reference(abs(x64), abs(w64), **rk), name
            )
            dx = vc.conv3d_grad_input(gy, w, x.shape, stream=s, **kw)
            ref = conv3d_grad_input_reference(g64, w64, x.shape, **rk)
            assert_close(dx, ref, conv3d_grad_input_reference(abs(g64), abs(w64), x.shape, **rk), name)
            dw = vc.conv3d_grad_weight(x, gy, w.shape, stream=s, **kw)
            ref = conv3d_grad_weight_reference(x64, g64, w.shape, **rk)
            assert_close(dw, ref, conv3d_grad_weight_reference(abs(x64), abs(g64), w.shape, **rk), name)
            runs += 3
    vc.synchronize(s)
    print(f"cuda_sanitizer_driver: {runs} kernel runs checked")


if __name__ == "__main__":
    main()
