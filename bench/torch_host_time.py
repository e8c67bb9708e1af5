"""Host time per call of volconv.torch on a tiny depthwise conv (1x8x2x2x2,
3x3x3, float32), layer by layer, against torch's own F.conv3d: where the
time between a Python call and the kernel launch goes, when the GPU (or
CPU) work itself is negligible. Best of 10 rounds of 100 calls, rounds of
all rows interleaved; a synchronize around each round on CUDA.

Rows: the plain op (`vc.conv3d` on NDHWC views), the ops' implementations
(`_ops._conv3d_impl` etc.: what the autograd Functions call), the eager
autograd.Function, `vt.conv3d` and its forward + backward, and torch's.
"an empty autograd.Function" launches nothing: the floor torch's Python
autograd sets. Timing and plot are bench/call_overhead_cpu.py's. Prints the table and saves a plot.

    python bench/torch_host_time.py                 # CUDA if present, else CPU
    python bench/torch_host_time.py --device cpu
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from call_overhead_cpu import measure, plot  # the same best-of-interleaved-rounds timing and bar chart

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
        "torch: an empty autograd.Function, forward + backward": lambda: torch.autograd.grad(
            Trivial.apply(x, w), (x, w), g
        ),
        "torch F.conv3d": lambda: torch.nn.functional.conv3d(x, w, None, 1, 1, 1, 8),
        "torch F.conv3d forward + backward": lambda: torch.autograd.grad(
            torch.nn.functional.conv3d(x, w, None, 1, 1, 1, 8), (x, w), g
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--plot", type=Path, default=HERE / "torch_host_time.png")
    args = ap.parse_args()
    sync = torch.cuda.synchronize if args.device == "cuda" else None
    best = measure(rows(args.device), args.rounds, args.calls, sync)
    title = f"volconv.torch host time, tiny depthwise conv, {args.device} (volconv {vc.__version__}, torch {torch.__version__})"
    print(title)
    print(f"{'call':54s} {'us':>8s}")
    for name, us in best.items():
        print(f"{name:54s} {us:8.1f}")
    plot(best, args.plot, title)


if __name__ == "__main__":
    main()
