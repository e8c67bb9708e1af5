"""A real conv3d with volconv, checked against a float64 NumPy computation.

Run: python examples/quickstart.py
"""

import time

import numpy as np

import volconv as vc

rng = np.random.default_rng(0)
# A video-like volume: batch 2, 16 frames of 56x56, 32 channels (NDHWC).
x = rng.standard_normal((2, 16, 56, 56, 32)).astype(np.float32)
# 64 filters of 3x3x3 over the 32 input channels.
w = (rng.standard_normal((64, 3, 3, 3, 32)) / np.sqrt(27 * 32)).astype(np.float32)

start = time.perf_counter()
y = vc.conv3d(x, w, stride=(1, 2, 2), padding=1)
seconds = time.perf_counter() - start
flops = 2 * y.size * 27 * 32
print(f"volconv {vc.__version__} on {vc.default_device()}")
print(f"conv3d {x.shape} * {w.shape} -> {y.shape} {y.dtype}")
print(f"{seconds * 1e3:.1f} ms, {flops / seconds / 1e9:.1f} GFLOP/s")

# Spot-check a few outputs against a direct float64 sum over the taps.
xp = np.pad(x.astype(np.float64), [(0, 0), (1, 1), (1, 1), (1, 1), (0, 0)])
for n, d, h, wo, c in [(0, 0, 0, 0, 0), (1, 15, 27, 27, 63), (1, 7, 13, 3, 17)]:
    window = xp[n, d : d + 3, 2 * h : 2 * h + 3, 2 * wo : 2 * wo + 3, :]
    expected = float(np.sum(window * w[c].astype(np.float64)))
    assert abs(y[n, d, h, wo, c] - expected) < 1e-4, (y[n, d, h, wo, c], expected)
print("spot checks against float64: OK")
