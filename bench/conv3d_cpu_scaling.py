"""Thread scaling of the CPU backend: volconv vs PyTorch channels_last_3d on
the shapes of bench/conv3d_cpu.py (fp32) at 1, 2, 4, ... threads, in the
same two modes, each in its own subprocess:

  isolated     torch's OpenMP workers passive (OMP_WAIT_POLICY=PASSIVE) and a
               busy-wait pause before each timed call.
  after-torch  each volconv call right after a torch conv, no pause (torch's
               workers still spinning), as between PyTorch ops.

Per shape and thread count the frameworks run interleaved; the best of
--repeats is reported. Prints a table per mode (ms, GFLOP/s, speed-up over
torch channels_last_3d, each framework's speed-up over its first thread
count, and volconv's scaling relative to torch's), and saves a plot of the
speed-up over torch against threads beside this script (or where --plot
says). --isa compares kernel sets (e.g. avx512bf16 against avx512bf16-2fma,
the tiles for two 512-bit FMA pipes); --no-winograd the direct paths.

    python bench/conv3d_cpu_scaling.py --threads 1,2,4,8,16 --out scaling.md
    python bench/conv3d_cpu_scaling.py --shapes b,h,l,n --threads 1,16 --mode both --isa avx512f
    python bench/conv3d_cpu_scaling.py --shapes a,n --threads 1,2 --dry-run   # the (shape, threads) runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from conv3d_cpu import MODES, SHAPES, busy_wait, machine, make_runners, shape_list  # noqa: E402

import volconv  # noqa: E402
from volconv import _core  # noqa: E402

DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # beside this script; git-ignored


def thread_list(text: str) -> list[int]:
    """argparse type: comma-separated positive thread counts."""
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected thread counts such as 1,2,4 but got '{text}'")
    return counts


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--shapes",
        type=shape_list,
        default=list(SHAPES),
        help=f"comma-separated shape keys of bench/conv3d_cpu.py ({','.join(SHAPES)})",
    )
    ap.add_argument("--threads", type=thread_list, default=[1, 2, 4, 8, 16])
    ap.add_argument("--mode", choices=["both", *MODES], default="isolated")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per framework (best is reported)")
    ap.add_argument(
        "--pause", type=float, default=0.03, help="isolated: seconds of busy waiting before each call"
    )
    ap.add_argument("--isa", default="", help="volconv's CPU kernel set (default: the CPU's best)")
    ap.add_argument("--no-winograd", action="store_true", help="volconv's CPU plans skip the winograd path")
    ap.add_argument("--dry-run", action="store_true", help="print the (shape, threads) runs and exit")
    ap.add_argument("--out", default=None, help="also write the tables (markdown) here")
    ap.add_argument("--plot", default=str(DEFAULT_PLOT), help=f"where the PNG goes (default {DEFAULT_PLOT})")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)  # one mode, in this process
    ap.add_argument("--json", help=argparse.SUPPRESS)  # where a worker writes its rows
    return ap.parse_args(argv)


def time_point(key: str, threads: int, mode: str, args) -> dict:
    """Best-of-repeats ms of volconv and torch_cl on one shape and thread count."""
    runners, flops, _ = make_runners(key, "float32", threads, False)
    for fw in ("volconv", "torch_cl"):
        runners[fw]()  # warm-up
    best = {"volconv": math.inf, "torch_cl": math.inf}
    for _ in range(args.repeats):
        for fw in ("volconv", "torch_cl"):
            if mode == "isolated":
                busy_wait(args.pause)
            else:
                runners["torch_cl"]()  # the op before: its workers still spin
            t0 = time.perf_counter()
            runners[fw]()
            best[fw] = min(best[fw], time.perf_counter() - t0)
    return {
        "shape": key,
        "threads": threads,
        "flops": flops,
        **{f"{fw}_ms": s * 1e3 for fw, s in best.items()},
    }


def run_worker(args):
    import torch

    if args.isa:
        _core._cpu_force_isa(args.isa)
    volconv.set_cpu_winograd(not args.no_winograd)
    rows = [time_point(key, th, args.worker, args) for key in args.shapes for th in args.threads]
    info = {
        "machine": machine(),
        "versions": f"volconv {volconv.__version__} ({_core._cpu_isa()} kernels"
        f"{', no winograd' if args.no_winograd else ''}), torch {torch.__version__}",
        "cpus": len(os.sched_getaffinity(0)),
        "route": _core._cpu_parallel_route(),
    }
    with open(args.json, "w") as f:
        json.dump({"info": info, "rows": rows}, f)


def run_mode_in_subprocess(mode: str) -> dict:
    """This script with --worker MODE in a fresh interpreter: the OpenMP wait
    policy is read once, when torch's runtime starts."""
    env = dict(os.environ)
    if mode == "isolated":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", mode, "--json", out]
        subprocess.run(cmd, env=env, check=True)
        with open(out) as f:
            return json.load(f)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| shape | threads | volconv ms | torch_cl ms | volconv GFLOP/s | torch_cl GFLOP/s | x torch_cl "
        "| volconv speed-up | torch speed-up | relative scaling |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    first = {}
    for r in rows:
        base = first.setdefault(r["shape"], r)
        sv, st = base["volconv_ms"] / r["volconv_ms"], base["torch_cl_ms"] / r["torch_cl_ms"]
        lines.append(
            f"| {r['shape']} | {r['threads']} | {r['volconv_ms']:.2f} | {r['torch_cl_ms']:.2f} "
            f"| {r['flops'] / r['volconv_ms'] / 1e6:.0f} | {r['flops'] / r['torch_cl_ms'] / 1e6:.0f} "
            f"| {r['torch_cl_ms'] / r['volconv_ms']:.2f}x | {sv:.2f}x | {st:.2f}x | {sv / st:.2f} |"
        )
    return lines


def plot(results: dict, path: str, title: str) -> None:
    """volconv's speed-up over torch channels_last_3d against threads, a
    line per shape, a panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False, layout="constrained"
    )
    for ax, (mode, res) in zip(axes[0], results.items()):
        for key in dict.fromkeys(r["shape"] for r in res["rows"]):
            pts = [
                (r["threads"], r["torch_cl_ms"] / r["volconv_ms"]) for r in res["rows"] if r["shape"] == key
            ]
            ax.plot(*zip(*pts), marker="o", label=key)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("threads")
        ax.set_ylabel("speed-up over torch channels_last_3d")
        ax.set_title(mode)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), title="shape")
    fig.suptitle(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    if args.dry_run:
        for key in args.shapes:
            for th in args.threads:
                print(key, th)
        return
    if args.worker:
        run_worker(args)
        return
    modes = MODES if args.mode == "both" else [args.mode]
    results = {mode: run_mode_in_subprocess(mode) for mode in modes}
    info = next(iter(results.values()))["info"]
    lines = [f"{info['machine']}, {info['cpus']} CPUs available; {info['versions']}"]
    for mode, res in results.items():
        lines += ["", f"== {mode}; volconv's threads: {res['info']['route']}", "", *table(res["rows"])]
    print("\n".join(lines), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    plot(results, args.plot, f"conv3d on CPU, thread scaling: {info['machine']}\n{info['versions']}")


if __name__ == "__main__":
    main()
