"""Per-call overhead of volconv's CPU ops: the time of a tiny call (one
output position, 8 channels), where the arithmetic is negligible and what is
left is Python, the bindings and the dispatch, with numpy and torch operands,
against PyTorch's own F.conv3d and aten.convolution_backward on the same
sizes. One thread for both libraries. Each row is the best, over --rounds
interleaved rounds, of the mean of --calls back-to-back calls. Prints a
table and saves a bar chart beside this script (or where --plot says).

    python bench/call_overhead_cpu.py
    python bench/call_overhead_cpu.py --rounds 20 --calls 500 --plot /tmp/overhead.png
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

import volconv as vc

DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # git-ignored


def cases(torch):
    """name -> callable, each a tiny call of one library."""
    x = np.random.default_rng(0).standard_normal((1, 1, 1, 1, 8), dtype=np.float32)
    w = np.random.default_rng(1).standard_normal((8, 1, 1, 1, 8), dtype=np.float32)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    # PyTorch's layout: (N, C, D, H, W) and (C_out, C_in, KD, KH, KW) views of the same memory.
    px, pw = tx.permute(0, 4, 1, 2, 3), tw.permute(0, 4, 1, 2, 3)
    conv_bwd = torch.ops.aten.convolution_backward
    return {
        "volconv conv3d, numpy": lambda: vc.conv3d(x, w),
        "volconv conv3d, torch": lambda: vc.conv3d(tx, tw),
        "torch F.conv3d": lambda: torch.nn.functional.conv3d(px, pw),
        "volconv conv3d_grad_input, torch": lambda: vc.conv3d_grad_input(tx, tw, (1, 1, 1, 1, 8)),
        "volconv conv3d_grad_weight, numpy": lambda: vc.conv3d_grad_weight(x, x, (8, 1, 1, 1, 8)),
        "volconv conv3d_grad_weight, torch": lambda: vc.conv3d_grad_weight(tx, tx, (8, 1, 1, 1, 8)),
        "torch convolution_backward (input, weight)": lambda: conv_bwd(
            px, px, pw, None, (1, 1, 1), (0, 0, 0), (1, 1, 1), False, (0, 0, 0), 1, (True, True, False)
        ),
    }


def measure(fns: dict, rounds: int, calls: int, sync=None) -> dict:
    """Microseconds a call of each function: the best of `rounds`
    interleaved rounds of `calls` back-to-back calls. `sync` (for GPU work,
    also bench/torch_host_time.py) runs before each round's clock starts
    and after it stops."""
    best = {k: float("inf") for k in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            if sync is not None:
                sync()
            t = time.perf_counter()
            for _ in range(calls):
                f()
            best[k] = min(best[k], (time.perf_counter() - t) / calls)
            if sync is not None:
                sync()
    return {k: v * 1e6 for k, v in best.items()}


def plot(us: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(us)
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    ax.barh(
        names[::-1],
        [us[n] for n in names[::-1]],
        color=["C1" if n.startswith("torch") else "C0" for n in names[::-1]],
    )
    ax.set_xlabel("microseconds per call (best round)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40, help="interleaved rounds (the best is kept)")
    ap.add_argument("--calls", type=int, default=1000, help="back-to-back calls per round")
    ap.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="where to save the bar chart")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        ap.error("--rounds and --calls must be at least 1")

    import torch

    torch.set_num_threads(1)
    vc.set_num_threads(1)
    us = measure(cases(torch), args.rounds, args.calls)
    title = f"{platform.processor() or platform.machine()}, 1 thread, volconv {vc.__version__}, torch {torch.__version__}"
    print(title)
    print(f"{'call (1x1x1x1x8, 8 -> 8, kernel 1)':44s} {'us/call':>8s}")
    for k, v in us.items():
        print(f"{k:44s} {v:8.2f}")
    plot(us, args.plot, title)


if __name__ == "__main__":
    main()
