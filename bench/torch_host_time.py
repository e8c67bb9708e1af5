"""Host time per call of volconv.torch on a tiny depthwise conv (1x8x2x2x2,
3x3x3, float32), layer by layer, against torch's own F.conv3d: where the
time between a Python call and the kernel launch goes, when the GPU (or
CPU) work itself is negligible. Best of 10 rounds of 100 calls, rounds of
all rows interleaved; a synchronize around each round on CUDA.

Rows: the plain op (`vc.conv3d` on NDHWC views), the ops' implementations
(`_ops._conv3d_impl` etc.: what the autograd Functions call), the eager
autograd.Function, `vt.conv3d` and its forward + backward, and torch's.
"trivial Function" is an autograd.Function that launches nothing: the
floor torch's Python autograd sets. Prints the table and saves a plot.

    python bench/torch_host_time.py                 # CUDA if present, else CPU
    python bench/torch_host_time.py --device cpu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import volconv as vc
import volconv.torch as vt
from volconv.torch import _eager, _ops

HERE = Path(__file__).resolve().parent


def rows(dev: str) -> dict:
    x = (
        torch.randn(1, 8, 2, 2, 2, device=dev)
        .contiguous(memory_format=torch.channels_last_3d)
        .requires_grad_()
    )
    w = torch.randn(8, 1, 3, 3, 3, device=dev, requires_grad=True)
    xd, wd = x.detach(), w.detach()
    xn, wn = xd.permute(0, 2, 3, 4, 1), wd.permute(0, 2, 3, 4, 1)
    one = [1, 1, 1]
    g = torch.ones_like(vt.conv3d(x, w, None, 1, 1, 1, 8))
    gn = g.permute(0, 2, 3, 4, 1)
    empty = torch.zeros(1, 8, 2, 2, 2, device=dev)

    class Trivial(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return empty.new_empty(empty.shape)

        @staticmethod
        def backward(ctx, grad):
            return torch.zeros_like(xd), torch.zeros_like(wd)

    return {
        "vc.conv3d (plain op)": lambda: vc.conv3d(xn, wn, 1, 1, 1, 8),
        "vc.conv3d_grad_input": lambda: vc.conv3d_grad_input(gn, wn, (1, 2, 2, 2, 8), 1, 1, 1, 8),
        "vc.conv3d_grad_weight": lambda: vc.conv3d_grad_weight(xn, gn, (8, 3, 3, 3, 1), 1, 1, 1, 8),
        "impl conv3d": lambda: _ops._conv3d_impl(xd, wd, None, None, one, one, one, one, 8, None, "zeros"),
        "impl grad_input": lambda: _ops._conv3d_grad_input_impl(
            g, wd, [1, 8, 2, 2, 2], one, one, one, one, 8
        ),
        "impl grad_weight": lambda: _ops._conv3d_grad_weight_impl(
            xd, g, [8, 1, 3, 3, 3], one, one, one, one, 8
        ),
        "Conv3d.apply (eager Function)": lambda: _eager.Conv3d.apply(
            x, w, None, None, one, one, one, one, 8, None, "zeros"
        ),
        "vt.conv3d": lambda: vt.conv3d(x, w, None, 1, 1, 1, 8),
        "vt.conv3d forward + backward": lambda: torch.autograd.grad(
            vt.conv3d(x, w, None, 1, 1, 1, 8), (x, w), g
        ),
        "trivial Function forward + backward": lambda: torch.autograd.grad(Trivial.apply(x, w), (x, w), g),
        "F.conv3d": lambda: torch.nn.functional.conv3d(x, w, None, 1, 1, 1, 8),
        "F.conv3d forward + backward": lambda: torch.autograd.grad(
            torch.nn.functional.conv3d(x, w, None, 1, 1, 1, 8), (x, w), g
        ),
    }


def measure(fns: dict, dev: str, rounds: int, calls: int) -> dict:
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    best = dict.fromkeys(fns, float("inf"))
    for f in fns.values():
        for _ in range(20):
            f()
    for _ in range(rounds):
        for name, f in fns.items():
            sync()
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e6)
            sync()
    return best


def plot(best: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    names = list(best)
    ax.barh(range(len(names)), [best[n] for n in names])
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("host time per call, us (best round)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--plot", type=Path, default=HERE / "torch_host_time.png")
    args = ap.parse_args()
    best = measure(rows(args.device), args.device, args.rounds, args.calls)
    print(f"{'call':40s} {'us':>8s}")
    for name, us in best.items():
        print(f"{name:40s} {us:8.1f}")
    title = f"volconv.torch host time, tiny depthwise conv, {args.device} (torch {torch.__version__})"
    plot(best, args.plot, title)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
