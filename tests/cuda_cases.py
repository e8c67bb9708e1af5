"""Depthwise shapes the CUDA tests and the sanitizer driver share: each is
(N, (D, H, W), C, kernel, stride, (pad_lo, pad_hi), dilation); together they
reach both register tiles (W >= 8 and below), C below, at and above a warp,
strides, dilations, asymmetric padding and negative-free crops. The 3x3x3
stride-1 cases take the tiled kernels (C a multiple of 8: 16-byte chunks in
every dtype): the first within one tile, the last across H and W tiles,
two D segments, a partial block of channels and padding 0 and 2."""

from __future__ import annotations

CASES = [
    (1, (4, 6, 9), 32, (3, 3, 3), (1, 1, 1), ((1, 1, 1), (1, 1, 1)), (1, 1, 1)),
    (2, (5, 7, 12), 70, (3, 3, 3), (2, 1, 2), ((1, 0, 2), (0, 1, 1)), (1, 1, 1)),
    (1, (6, 5, 4), 3, (1, 3, 5), (1, 2, 1), ((0, 1, 2), (0, 1, 2)), (1, 1, 1)),
    (2, (7, 9, 16), 64, (3, 2, 3), (1, 1, 1), ((2, 1, 2), (2, 1, 2)), (2, 1, 2)),
    (1, (3, 4, 10), 1, (2, 2, 2), (1, 1, 3), ((0, 0, 0), (0, 0, 0)), (1, 2, 1)),
    (2, (9, 11, 17), 40, (3, 3, 3), (1, 1, 1), ((2, 0, 1), (0, 2, 1)), (1, 1, 1)),
]


def case_id(case) -> str:
    n, size, c, k, s, (lo, hi), d = case
    return f"n{n}-{'x'.join(map(str, size))}-c{c}-k{''.join(map(str, k))}-s{''.join(map(str, s))}-d{''.join(map(str, d))}"


def output_size(size, k, s, lo, hi, d):
    return tuple((size[i] + lo[i] + hi[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3))
