"""Shared geometry sweep: every backend's parity suite runs these cases (the
CPU path in test_conv3d_parity.py, the emulated Metal kernels in
test_metal_emulated.py), so all backends answer for the same shapes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    input: tuple  # (N, D, H, W, C_in)
    c_out: int
    kernel: tuple  # (KD, KH, KW)
    stride: tuple = (1, 1, 1)
    pad_lo: tuple = (0, 0, 0)
    pad_hi: tuple = (0, 0, 0)
    dilation: tuple = (1, 1, 1)
    groups: int = 1

    @property
    def weight_shape(self) -> tuple:
        return (self.c_out, *self.kernel, self.input[4] // self.groups)

    def params(self) -> dict:
        return dict(
            stride=self.stride,
            pad_lo=self.pad_lo,
            pad_hi=self.pad_hi,
            dilation=self.dilation,
            groups=self.groups,
        )

    def api_kwargs(self) -> dict:
        """Keyword arguments for volconv.conv3d."""
        return dict(
            stride=self.stride, padding=(self.pad_lo, self.pad_hi), dilation=self.dilation, groups=self.groups
        )

    def inputs(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """float32 input and weight, uniform in [-1, 1)."""
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, self.input).astype(np.float32)
        w = rng.uniform(-1, 1, self.weight_shape).astype(np.float32)
        return x, w


def _c(name, n, d, h, w, cin, cout, k, s=1, p=0, dil=1, g=1):
    t3 = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)
    if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], tuple):
        lo, hi = p
    else:
        lo = hi = t3(p)
    return Case(name, (n, d, h, w, cin), cout, t3(k), t3(s), lo, hi, t3(dil), g)


CASES = [
    _c("pointwise", 1, 3, 4, 5, 8, 16, 1),
    _c("pointwise_odd_channels", 2, 2, 3, 3, 7, 5, 1),
    _c("k3_p1", 1, 5, 6, 7, 8, 8, 3, p=1),
    _c("k3_valid", 1, 5, 5, 5, 4, 6, 3),
    _c("k2", 1, 4, 4, 4, 3, 4, 2),
    _c("k4_p2", 1, 6, 6, 6, 2, 3, 4, p=2),
    _c("k5_p2", 1, 6, 5, 7, 3, 2, 5, p=2),
    _c("noncubic_kernel", 1, 5, 8, 9, 4, 6, (1, 3, 5), p=(0, 1, 2)),
    _c("stem_like", 1, 4, 12, 12, 3, 8, (3, 7, 7), s=(1, 2, 2), p=(1, 3, 3)),
    _c("stride2", 2, 7, 7, 7, 6, 10, 3, s=2, p=1),
    _c("stride_mixed", 1, 6, 9, 8, 5, 7, 3, s=(1, 2, 3), p=1),
    _c("stride_gt_kernel", 1, 9, 9, 9, 2, 3, 2, s=3),
    _c("dilation2", 1, 8, 8, 8, 4, 4, 3, p=2, dil=2),
    _c("dilation_mixed", 1, 7, 9, 11, 3, 5, 3, p=(1, 2, 3), dil=(1, 2, 3)),
    _c("asym_pad", 1, 5, 6, 7, 4, 4, 3, p=((0, 1, 2), (2, 1, 0))),
    _c("asym_pad_stride", 1, 8, 8, 8, 3, 5, 3, s=2, p=((1, 0, 1), (0, 2, 0))),
    _c("pad_larger_than_kernel", 1, 3, 3, 3, 2, 2, 2, p=3),
    _c("groups2", 1, 5, 5, 5, 8, 12, 3, p=1, g=2),
    _c("groups4_odd", 2, 4, 5, 6, 12, 8, 3, s=(1, 2, 1), p=1, g=4),
    _c("depthwise", 1, 6, 6, 6, 16, 16, 3, p=1, g=16),
    _c("depthwise_multiplier", 1, 5, 5, 5, 4, 8, 3, p=1, g=4),
    _c("depthwise_odd", 1, 5, 6, 7, 5, 5, 3, s=2, p=1, g=5),
    _c("cin1", 1, 8, 8, 8, 1, 16, 3, p=1),
    _c("cin2", 2, 6, 6, 6, 2, 9, 3, p=1),
    _c("cin3_stem", 1, 4, 10, 10, 3, 16, (3, 5, 5), s=(1, 2, 2), p=(1, 2, 2)),
    _c("cin4", 1, 5, 5, 5, 4, 33, 3, p=1),
    _c("cout1", 1, 5, 5, 5, 8, 1, 3, p=1),
    _c("odd_everything", 3, 3, 5, 7, 7, 11, 3, p=1),
    _c("wide_channels", 1, 3, 3, 4, 64, 72, 3, p=1),
    _c("cout_tail", 1, 4, 4, 6, 16, 70, 3, p=1),
    _c("long_w", 1, 2, 3, 37, 8, 8, 3, p=1),
    _c("batch4", 4, 3, 4, 4, 6, 6, 3, p=1),
    _c("kernel_equals_input", 1, 3, 3, 3, 4, 5, 3),
    _c("single_voxel", 1, 1, 1, 1, 3, 4, 1),
]
