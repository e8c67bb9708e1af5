"""Runs every CUDA depthwise kernel once on small shapes (host arrays with a
GPU stream, so no other library's kernels run), for compute-sanitizer:
  compute-sanitizer --tool memcheck --error-exitcode 1 python tests/cuda_sanitizer_driver.py
  compute-sanitizer --tool racecheck --error-exitcode 1 python tests/cuda_sanitizer_driver.py
With --pairs it runs the 16-bit pairs kernel instead (a problem large
enough for the planner to pick it: at least 512 blocks of 64 channels), with --cudnn
the cuDNN route (dense and grouped problems,
symmetric and asymmetric padding: cuDNN's kernels and the packed copies;
conv_transpose3d and its gradients: the filter transform).
Each result is also checked against the float64 reference, so a silent
wrong answer under the sanitizer fails too."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from cuda_cases import CASES, output_size  # noqa: E402
from cuda_transpose_cases import CASES as TRANSPOSE_CASES  # noqa: E402
from cuda_transpose_cases import grad_input_reference, grad_weight_reference  # noqa: E402
from cuda_transpose_cases import output_size as transposed_size  # noqa: E402
from reference_training import (  # noqa: E402
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)

import volconv as vc  # noqa: E402

from reference import conv3d_reference  # noqa: E402

DTYPES = {"float32": np.float32, "float16": np.float16}
try:
    import ml_dtypes

    DTYPES["bfloat16"] = ml_dtypes.bfloat16
except ImportError:  # bfloat16 then runs in the pytest suite only
    print("cuda_sanitizer_driver: no ml_dtypes, bfloat16 left out")


# The cuDNN route's cases: (N, size, C_in, C_out, groups, kernel, stride, (lo, hi), dilation).
CUDNN_CASES = [
    (1, (4, 5, 6), 8, 16, 1, (3, 3, 3), (1, 1, 1), ((1, 1, 1), (1, 1, 1)), (1, 1, 1)),
    (2, (5, 6, 7), 6, 4, 2, (3, 2, 3), (2, 1, 2), ((1, 0, 2), (0, 1, 1)), (1, 2, 1)),
]


# The pairs kernel's problem: 4 x 17 x 17 tiles x one block of 64 channels
# (its forward and input gradient; the weight gradient runs the tiled kernel).
PAIRS_CASE = (4, (1, 130, 130), 64, 64, 64, (3, 3, 3), (1, 1, 1), ((1, 1, 1), (1, 1, 1)), (1, 1, 1))


def main(cudnn: bool, pairs: bool = False) -> None:
    rng = np.random.default_rng(0)
    s = vc.default_stream(vc.gpu)
    runs = 0
    cases = CUDNN_CASES if cudnn else [(n, sz, c, c, c, k, st, p, d) for n, sz, c, k, st, p, d in CASES]
    if pairs:
        cases = [PAIRS_CASE]
    for case in cases:
        n, size, c, co, g, k, st, (lo, hi), d = case
        kw = dict(stride=st, padding=(lo, hi), dilation=d, groups=g)
        rk = dict(stride=st, pad_lo=lo, pad_hi=hi, dilation=d, groups=g)
        for name, dt in DTYPES.items():
            if pairs and name == "float32":  # the pairs kernel is 16-bit only
                continue
            x = rng.standard_normal((n, *size, c)).astype(dt)
            w = rng.standard_normal((co, *k, c // g)).astype(dt)
            gy = rng.standard_normal((n, *output_size(size, k, st, lo, hi, d), co)).astype(dt)
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
    if cudnn:
        runs += transposes(rng, s)
    vc.synchronize(s)
    print(f"cuda_sanitizer_driver: {runs} {'cuDNN' if cudnn else 'kernel'} runs checked")


def transposes(rng, s) -> int:
    """conv_transpose3d and its two gradients on a grouped strided case (the
    transposed form) and a stride-1 one (the forward form, taps reversed)."""
    from volconv import _training

    runs = 0
    for case in (TRANSPOSE_CASES[2], TRANSPOSE_CASES[0]):
        n, size, ci, co, g, k, st, p, op, d = case
        kw = dict(stride=st, padding=p, dilation=d, output_padding=op, groups=g)
        gk = dict(stride=st, padding=p, dilation=d, groups=g)
        for name, dt in DTYPES.items():
            x = rng.standard_normal((n, *size, ci)).astype(dt)
            w = rng.standard_normal((co, *k, ci // g)).astype(dt)
            gy = rng.standard_normal((n, *transposed_size(size, k, st, p, op, d), co)).astype(dt)
            x64, w64, g64 = (a.astype(np.float64) for a in (x, w, gy))
            y = vc.conv_transpose3d(x, w, stream=s, **kw)
            ref = conv_transpose3d_reference(x64, w64, st, p, p, d, op, g)
            assert_close(y, ref, conv_transpose3d_reference(abs(x64), abs(w64), st, p, p, d, op, g), name)
            dx = _training._conv_transpose3d_grad_input(gy, w, x.shape, stream=s, **kw)
            ref = grad_input_reference(g64, w64, x.shape, **gk)
            assert_close(dx, ref, grad_input_reference(abs(g64), abs(w64), x.shape, **gk), name)
            dw = _training._conv_transpose3d_grad_weight(x, gy, w.shape, stream=s, **kw)
            ref = grad_weight_reference(x64, g64, w.shape, **gk)
            assert_close(dw, ref, grad_weight_reference(abs(x64), abs(g64), w.shape, **gk), name)
            runs += 3
    return runs


if __name__ == "__main__":
    main("--cudnn" in sys.argv[1:], "--pairs" in sys.argv[1:])
