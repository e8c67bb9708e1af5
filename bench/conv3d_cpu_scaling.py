"""Thread scaling of the CPU backend: volconv vs PyTorch channels_last_3d on
shapes of bench/conv3d_cpu.py (fp32; by default a, c, e and the ones slow on
Intel: b, h, l, m, n) at 1, 2, 4, ... threads, interleaved per thread count,
with a busy-wait pause before each call (volconv runs on torch's OpenMP team
here, as in any process that imported torch; the pause lets it settle).
Prints a table (ms, GFLOP/s, speed-up over 1 thread for each, and volconv's
speed-up relative to torch's: the issue's target is >= 0.9 at 16 threads).

    python bench/conv3d_cpu_scaling.py --threads 1,2,4,8,16 --out scaling.md
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from conv3d_cpu import busy_wait, make_runners  # noqa: E402

import volconv  # noqa: E402
from volconv import _core  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="a,b,c,e,h,l,m,n")
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per framework (best is reported)")
    ap.add_argument(
        "--pause", type=float, default=0.03, help="seconds of busy waiting before each timed call"
    )
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args()
    import torch

    counts = [int(t) for t in args.threads.split(",")]
    lines = [
        f"volconv {volconv.__version__} ({_core._cpu_isa()} kernels), torch {torch.__version__}, "
        f"{len(os.sched_getaffinity(0))} CPUs available",
        "",
        "| shape | threads | volconv ms | torch_cl ms | volconv GFLOP/s | torch_cl GFLOP/s | x torch_cl "
        "| volconv speed-up | torch speed-up | relative scaling |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for key in args.shapes.split(","):
        base = {}
        for th in counts:
            runners, flops, _ = make_runners(key, "float32", th, False)
            best = {}
            for fw in ("volconv", "torch_cl"):
                runners[fw]()  # warm-up
            for _ in range(args.repeats):
                for fw in ("volconv", "torch_cl"):
                    # torch's OpenMP workers spin for a while after a call
                    # and would steal the cores from the next framework.
                    busy_wait(args.pause)
                    t0 = time.perf_counter()
                    runners[fw]()
                    best[fw] = min(best.get(fw, math.inf), time.perf_counter() - t0)
            if th == counts[0]:
                base = dict(best)
            sv, st = base["volconv"] / best["volconv"], base["torch_cl"] / best["torch_cl"]
            line = (
                f"| {key} | {th} | {best['volconv'] * 1e3:.2f} | {best['torch_cl'] * 1e3:.2f} "
                f"| {flops / best['volconv'] / 1e9:.0f} | {flops / best['torch_cl'] / 1e9:.0f} "
                f"| {best['torch_cl'] / best['volconv']:.2f}x | {sv:.2f}x | {st:.2f}x | {sv / st:.2f} |"
            )
            lines.append(line)
            print(line, flush=True)
    lines.append(f"\nvolconv's threads: {_core._cpu_parallel_route()} (openmp: torch's team)")
    print(lines[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
