"""Quick wall-clock timing of the training ops against PyTorch (not the
per-direction bench of issue 14, which is still to come). Interleaves the
two libraries, best of several runs, on `--threads` threads each.

    OMP_WAIT_POLICY=PASSIVE python bench/training_timing.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import volconv as vc


def best_ms(fns, repeats):
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t)
    return [min(t) * 1e3 for t in times]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vc.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []

    x = rng.standard_normal((1, 8, 28, 28, 128), dtype=np.float32)
    w = rng.standard_normal((64, 2, 2, 2, 128), dtype=np.float32)
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(4, 0, 1, 2, 3)))
    ours, theirs = best_ms(
        [lambda: vc.conv_transpose3d(x, w, stride=2), lambda: F.conv_transpose3d(xt, wt, stride=2)],
        args.repeats,
    )
    rows.append(("conv_transpose3d 1x8x28x28x128->64 k2 s2", ours, theirs))

    x = rng.standard_normal((1, 16, 56, 56, 64), dtype=np.float32)
    w = rng.standard_normal((64, 3, 3, 3, 64), dtype=np.float32)
    gy = rng.standard_normal((1, 16, 56, 56, 64), dtype=np.float32)
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3)
    wt = torch.from_numpy(w).permute(0, 4, 1, 2, 3)
    gt = torch.from_numpy(gy).permute(0, 4, 1, 2, 3)

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            gt, xt, wt, None, [1] * 3, [1] * 3, [1] * 3, False, [0] * 3, 1, mask
        )

    ours, theirs = best_ms(
        [lambda: vc.conv3d_grad_input(gy, w, x.shape, padding=1), torch_backward([True, False, False])],
        args.repeats,
    )
    rows.append(("conv3d_grad_input a: 1x16x56x56x64->64 k3 p1", ours, theirs))
    ours, theirs = best_ms(
        [lambda: vc.conv3d_grad_weight(x, gy, w.shape, padding=1), torch_backward([False, True, False])],
        args.repeats,
    )
    rows.append(("conv3d_grad_weight a: 1x16x56x56x64->64 k3 p1", ours, theirs))

    print(
        f"{'op (float32, ' + str(args.threads) + ' threads)':48s} {'volconv ms':>11s} {'torch ms':>9s} {'speedup':>8s}"
    )
    for name, ours, theirs in rows:
        print(f"{name:48s} {ours:11.1f} {theirs:9.1f} {theirs / ours:7.2f}x")


if __name__ == "__main__":
    main()
