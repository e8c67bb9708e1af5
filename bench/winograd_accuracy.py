"""How far the CPU's Winograd F(2x2x2, 3x3x3) results are from float64,
beside the direct path's (volconv.set_cpu_winograd(False)), on weights from
benign to adversarial. Prints, per case, the largest |error| over the sum of
|terms| of that output (the scale the tests' tolerances use) and over the
largest |output|.

    python bench/winograd_accuracy.py
"""

from __future__ import annotations

import numpy as np

import volconv


def reference(x, w):
    """float64 conv3d (padding 1) and the sum of |terms| per output, by
    summing shifted products (independent of volconv and of torch)."""
    n, d, h, wd, _ = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
    w64 = w.astype(np.float64)
    ref = np.zeros((n, d, h, wd, w.shape[0]))
    scale = np.zeros_like(ref)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                patch = xp[:, a : a + d, b : b + h, c : c + wd, :]
                ref += patch @ w64[:, a, b, c, :].T
                scale += np.abs(patch) @ np.abs(w64[:, a, b, c, :]).T
    return ref, scale


def cases(rng):
    shape = (32, 3, 3, 3, 32)
    uniform = rng.uniform(-1, 1, shape)
    corner = uniform.copy()
    corner[:, 0, 0, 0, :] *= 1e4
    spread = rng.uniform(-1, 1, shape) * np.exp(rng.uniform(0, np.log(1e4), (1, 3, 3, 3, 1)))
    x = rng.uniform(-1, 1, (1, 8, 8, 8, 32))
    relu = np.maximum(x, 0)
    return [
        ("random inputs and weights", x, uniform),
        ("ReLU inputs, random weights", relu, rng.uniform(-1, 1, shape)),
        ("ReLU inputs, tap sizes spread over 1e4", relu, spread),
        ("random inputs, one corner tap 1e4x", x, corner),
    ]


def main():
    rng = np.random.default_rng(1)
    print(f"volconv {volconv.__version__}, float32 1x8x8x8x32 -> 32, k3 p1, CPU")
    print(f"{'case':40s} {'winograd':>20s} {'direct':>20s}")
    print(f"{'':40s} {'err/sum|t|  err/max|y|':>20s} {'err/sum|t|  err/max|y|':>20s}")
    enabled = volconv.cpu_winograd_enabled()
    try:
        for name, x, w in cases(rng):
            x32, w32 = x.astype(np.float32), w.astype(np.float32)
            ref, scale = reference(x32, w32)
            cols = []
            for winograd in (True, False):
                volconv.set_cpu_winograd(winograd)
                err = np.abs(np.asarray(volconv.conv3d(x32, w32, padding=1), np.float64) - ref)
                cols.append(f"{(err / scale).max():10.1e} {err.max() / np.abs(ref).max():9.1e}")
            print(f"{name:40s} {cols[0]:>20s} {cols[1]:>20s}")
    finally:
        volconv.set_cpu_winograd(enabled)


if __name__ == "__main__":
    main()
