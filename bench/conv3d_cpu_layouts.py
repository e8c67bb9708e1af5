"""The CPU's per-call costs around the kernels, on shapes of
bench/conv3d_cpu.py (fp32): an input whose channels are outermost in memory
(a torch NCDHW tensor permuted to NDHWC: volconv copies it once by a blocked
transpose), the same input made contiguous by the caller first, and weights
packed ahead (vc.pack_conv3d_weights), each against the contiguous input
with the plain weight; torch's own conv3d on the NCDHW tensor for scale
(OMP_WAIT_POLICY=PASSIVE). Variants are interleaved round by round; the
median of the rounds is reported. --cpu-time measures process CPU time
(meaningful at --threads 1 on a shared machine). Prints a table and saves a
plot of the ratios.

    python bench/conv3d_cpu_layouts.py --shapes a,c,m,n --threads 16
    python bench/conv3d_cpu_layouts.py --shapes m --threads 1 --cpu-time --rounds 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads its OpenMP runtime

sys.path.insert(0, os.path.dirname(__file__))
import torch  # noqa: E402
from conv3d_cpu import SHAPES, machine  # noqa: E402

import volconv  # noqa: E402
from volconv import _core  # noqa: E402

DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # beside this script; git-ignored
VARIANTS = ["contiguous", "ncdhw_view", "user_copy", "packed", "torch_ncdhw"]


def make_variants(key: str):
    shape, c_out, k, s, p, d, g = SHAPES[key]
    n, dd, h, w, c = shape
    gen = torch.Generator().manual_seed(0)
    x_ncdhw = torch.rand(n, c, dd, h, w, generator=gen) * 2 - 1
    view = x_ncdhw.permute(0, 2, 3, 4, 1)  # NDHWC, channels outermost in memory
    x = view.contiguous()
    weight = torch.rand(c_out, *k, c // g, generator=gen) * 2 - 1
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    packed = volconv.pack_conv3d_weights(weight, **kw)
    w_torch = weight.permute(0, 4, 1, 2, 3).contiguous()
    pad = p if isinstance(p, int) else tuple(p)
    out = volconv.conv3d(x, weight, **kw)
    flops = 2.0 * out.numel() * (c // g) * k[0] * k[1] * k[2]
    runs = {
        "contiguous": lambda: volconv.conv3d(x, weight, **kw),
        "ncdhw_view": lambda: volconv.conv3d(view, weight, **kw),
        "user_copy": lambda: volconv.conv3d(view.contiguous(), weight, **kw),
        "packed": lambda: volconv.conv3d(x, packed, **kw),
        "torch_ncdhw": lambda: torch.nn.functional.conv3d(x_ncdhw, w_torch, None, s, pad, d, g),
    }
    # Same results (bit for bit) from every volconv variant.
    for name in ("ncdhw_view", "user_copy", "packed"):
        assert torch.equal(runs[name](), out), name
    return runs, flops


def time_variants(runs, rounds: int, cpu_time: bool) -> dict[str, float]:
    clock = time.process_time if cpu_time else time.perf_counter
    for f in runs.values():
        f()  # warm-up
    # Enough calls per round for a measurable interval on a coarse clock.
    t0 = clock()
    runs["contiguous"]()
    calls = max(1, int(0.02 / max(clock() - t0, 1e-5)))
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, f in runs.items():
            t0 = clock()
            for _ in range(calls):
                f()
            samples[name].append((clock() - t0) / calls)
    return {name: statistics.median(v) for name, v in samples.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="a,c,j,m,n", help=f"comma-separated keys of {','.join(SHAPES)}")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time")
    ap.add_argument("--plot", default=str(DEFAULT_PLOT))
    args = ap.parse_args()
    volconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    print(f"# {machine()}, {args.threads} thread(s), {'CPU' if args.cpu_time else 'wall'} time, fp32")
    print(f"# volconv {volconv.__version__} ({_core._cpu_isa()}), torch {torch.__version__}")
    print("| shape | contiguous ms | NCDHW view | user copy | packed | torch NCDHW |")
    print("|---|---|---|---|---|---|")
    table = {}
    for key in args.shapes.split(","):
        runs, flops = make_variants(key)
        t = time_variants(runs, args.rounds, args.cpu_time)
        base = t["contiguous"]
        table[key] = {name: t[name] / base for name in VARIANTS}
        cells = " | ".join(f"{t[name] * 1e3:.3f} ms ({t[name] / base:.2f}x)" for name in VARIANTS[1:])
        print(f"| {key} | {base * 1e3:.3f} ({flops / base / 1e9:.0f} GFLOP/s) | {cells} |", flush=True)
    print("(ratios: time / the contiguous input's time with the plain weight; lower is faster)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    keys = list(table)
    width = 0.8 / (len(VARIANTS) - 1)
    for i, name in enumerate(VARIANTS[1:]):
        ax.bar([j + i * width for j in range(len(keys))], [table[k][name] for k in keys], width, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))], keys)
    ax.set_ylabel("time / contiguous input")
    ax.set_title(f"{machine()}, {args.threads} thread(s)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
