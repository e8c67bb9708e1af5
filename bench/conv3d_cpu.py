"""CPU conv3d benchmark: volconv vs PyTorch (channels_last_3d and default
layout) vs MLX CPU, on the same inputs, in two modes, each in its own
subprocess:

  isolated     torch's OpenMP workers passive (OMP_WAIT_POLICY=PASSIVE) and
               a busy-wait pause before each timed call; the frameworks run
               interleaved, so each sees cold caches and quiet cores.
  after-torch  how volconv runs between PyTorch ops: each volconv call right
               after a torch conv, no pause (torch's workers still spinning),
               and each torch conv timed both right after volconv and right
               after another torch conv (does volconv slow torch's next op?).

Prints a table per mode (ms, GFLOP/s, % of the machine's measured FMA peak,
speed-up over torch channels_last_3d, extra peak memory), volconv's speed
after torch relative to isolated, and saves a bar chart of the isolated mode
(conv3d_cpu_plot.py) beside this script, or where --plot says.

    python bench/conv3d_cpu.py                 # all shapes, both modes, ~5-8 min on 2 cores
    python bench/conv3d_cpu.py --shapes a,f --repeats 3 --no-mlx --mode after-torch
    python bench/conv3d_cpu.py --shapes a,f --dry-run   # what would run: a, f (and a in bf16, fp16)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import volconv
from volconv import _core

# name: (N, D, H, W, C_in), C_out, kernel, stride, padding, dilation, groups
SHAPES = {
    "a": ((1, 16, 56, 56, 64), 64, (3, 3, 3), 1, 1, 1, 1),
    "b": ((1, 8, 112, 112, 3), 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), 1, 1),
    "c": ((2, 32, 32, 32, 32), 32, (3, 3, 3), 1, 1, 1, 1),
    "d": ((1, 64, 64, 64, 1), 16, (3, 3, 3), 1, 1, 1, 1),
    "e": ((4, 8, 28, 28, 256), 256, (3, 3, 3), 1, 1, 1, 1),
    "f": ((1, 16, 56, 56, 64), 64, (3, 3, 3), 1, 1, 1, 64),
    "g": ((1, 16, 28, 28, 128), 256, (1, 1, 1), 1, 0, 1, 1),
    "h": ((1, 16, 56, 56, 64), 128, (3, 3, 3), 2, 1, 1, 1),
    "i": ((1, 16, 32, 32, 64), 64, (3, 3, 3), 1, 2, 2, 1),
    "j": ((1, 16, 56, 56, 64), 64, (1, 3, 3), 1, (0, 1, 1), 1, 1),  # factorised (2+1)D: spatial
    "k": ((1, 16, 56, 56, 64), 64, (3, 1, 1), 1, (1, 0, 0), 1, 1),  # factorised (2+1)D: temporal
    "l": ((1, 8, 32, 32, 128), 128, (3, 3, 3), 1, 1, 1, 4),  # grouped
    "m": ((2, 17, 23, 29, 5), 7, (3, 3, 3), 1, 1, 1, 1),  # odd, tiny channel counts
    "n": ((8, 8, 8, 8, 64), 64, (3, 3, 3), 1, 1, 1, 1),  # small volumes, batch 8
}
LOW_PRECISION = ["a", "c", "e"]
FRAMEWORKS = ["volconv", "torch_cl", "torch", "mlx"]
# after-torch mode: torch_cl is timed right after another torch conv,
# torch_cl_next right after volconv.
AFTER_TORCH_FRAMEWORKS = ["volconv", "torch_cl", "torch_cl_next"]
MODES = ["isolated", "after-torch"]
DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # beside this script; git-ignored


def shape_list(text: str) -> list[str]:
    """argparse type: comma-separated keys of SHAPES ("" for none)."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SHAPES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown shape(s) {','.join(unknown)}; the shapes are {','.join(SHAPES)}"
        )
    return keys


def select_jobs(shapes: list[str], low_precision: list[str]) -> list[tuple[str, str]]:
    """(shape, dtype) runs: every shape in float32, then those of the
    low-precision list that are among `shapes` in bfloat16 and float16."""
    jobs = [(k, "float32") for k in shapes]
    return jobs + [(k, dt) for dt in ("bfloat16", "float16") for k in low_precision if k in shapes]


def machine() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(want_mlx: bool) -> str:
    import torch

    text = f"volconv {volconv.__version__} ({_core._cpu_isa()}), torch {torch.__version__}"
    if want_mlx:
        import mlx.core as mx

        text += f", MLX {mx.__version__}"
    return text


class PeakProbe:
    """The FMA peak for "% of peak": the best of several probes taken between
    shapes, so one probe slowed by other processes on a shared machine does
    not make the kernels look faster than the hardware."""

    def __init__(self):
        self.fp32 = self.bf16 = 0.0
        self.probes = 0

    def measure(self):
        self.fp32 = max(self.fp32, _core._cpu_peak_gflops(False))
        self.bf16 = max(self.bf16, _core._cpu_peak_gflops(True))
        self.probes += 1


_libc = ctypes.CDLL(None)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Extra peak resident memory of one call: VmHWM is reset through
    /proc/self/clear_refs, freed heap handed back first (malloc_trim) so a
    cached block cannot hide an allocation. Linux only; None elsewhere."""

    def __enter__(self):
        self.ok = os.path.exists("/proc/self/clear_refs")
        if self.ok:
            _libc.malloc_trim(0)
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.ok = False
            self.base = _rss_kib("VmRSS:")
        return self

    def __exit__(self, *exc):
        self.mib = (_rss_kib("VmHWM:") - self.base) / 1024 if self.ok else None


def make_runners(key, dtype, threads, want_mlx):
    """One closure per framework computing the conv on prepared inputs."""
    import torch

    shape, c_out, k, s, p, d, g = SHAPES[key]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, (c_out, *k, shape[4] // g)).astype(np.float32)
    if dtype == "bfloat16":
        import ml_dtypes

        np_dt = ml_dtypes.bfloat16
    else:
        np_dt = {"float32": np.float32, "float16": np.float16}[dtype]
    xv, wv = x.astype(np_dt), w.astype(np_dt)
    t_dt = getattr(torch, dtype)
    tx = torch.from_numpy(x).to(t_dt).permute(0, 4, 1, 2, 3)
    tw = torch.from_numpy(w).to(t_dt).permute(0, 4, 1, 2, 3)
    tx_cl, tw_cl = (t.contiguous(memory_format=torch.channels_last_3d) for t in (tx, tw))
    tx_def, tw_def = tx.contiguous(), tw.contiguous()
    torch.set_num_threads(threads)
    volconv.set_num_threads(threads)
    runners = {
        "volconv": lambda: volconv.conv3d(xv, wv, stride=s, padding=p, dilation=d, groups=g),
        "torch_cl": lambda: torch.nn.functional.conv3d(
            tx_cl, tw_cl, stride=s, padding=p, dilation=d, groups=g
        ),
        "torch": lambda: torch.nn.functional.conv3d(
            tx_def, tw_def, stride=s, padding=p, dilation=d, groups=g
        ),
    }
    if want_mlx:
        import mlx.core as mx

        mx.set_default_device(mx.cpu)
        mx_dt = getattr(mx, dtype)
        mxx, mxw = mx.array(x).astype(mx_dt), mx.array(w).astype(mx_dt)
        mx.eval(mxx, mxw)

        def run_mlx():
            y = mx.conv3d(mxx, mxw, stride=s, padding=p, dilation=d, groups=g)
            mx.eval(y)
            return y

        runners["mlx"] = run_mlx
    y = runners["volconv"]()
    flops = 2.0 * y.size * math.prod(k) * (shape[4] // g)
    return runners, flops, y.nbytes


def busy_wait(seconds: float) -> None:
    """Waits on a busy core rather than asleep: after a sleep the next call
    starts on idle, clocked-down cores (a 10 us call then takes ~200 us here),
    which would penalise the short shapes."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--shapes",
        type=shape_list,
        default=list(SHAPES),
        help=f"comma-separated shape keys ({','.join(SHAPES)}); only these run",
    )
    ap.add_argument(
        "--low-precision",
        type=shape_list,
        default=LOW_PRECISION,
        help="of the --shapes, those also run in bf16 and fp16 (default a,c,e; '' for none)",
    )
    ap.add_argument(
        "--mode",
        choices=["both", *MODES],
        default="both",
        help="isolated, after-torch (float32 only), or both (default)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the (shape, dtype) runs and exit")
    ap.add_argument(
        "--repeats", type=int, default=5, help="timed repeats per framework, at least (best is reported)"
    )
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--no-mlx", action="store_true")
    ap.add_argument(
        "--slow-budget",
        type=float,
        default=20.0,
        help="skip a framework on a shape when one call is predicted to take longer (s); slow ones run once",
    )
    ap.add_argument(
        "--pause",
        type=float,
        default=0.03,
        help="isolated mode: seconds of busy waiting before each timed call",
    )
    ap.add_argument(
        "--route",
        choices=["auto", "pool"],
        default="auto",
        help="volconv's threads: auto (the OpenMP team torch loaded, else its pool) or pool (always its own, "
        "to compare)",
    )
    ap.add_argument(
        "--no-winograd", action="store_true", help="volconv's CPU plans skip the winograd path (to compare)"
    )
    ap.add_argument("--plot", default=str(DEFAULT_PLOT), help=f"where the PNG goes (default {DEFAULT_PLOT})")
    ap.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)  # one mode, in this process
    ap.add_argument("--json", help=argparse.SUPPRESS)  # where a worker writes its rows
    return ap.parse_args(argv)


def main():
    args = parse_args()
    jobs = select_jobs(args.shapes, args.low_precision)
    if args.dry_run:
        for key, dtype in jobs:
            print(key, dtype)
        return
    if args.worker:
        run_worker(args, jobs)
        return

    modes = MODES if args.mode == "both" else [args.mode]
    results = {mode: run_mode_in_subprocess(mode) for mode in modes}
    info = next(iter(results.values()))
    peak32 = max(r["peak32"] for r in results.values())
    peak16 = max(r["peak16"] for r in results.values())
    print(f"{info['machine']}, {args.threads} threads; {info['versions']}")
    bf16 = f"bf16 (vdpbf16ps) {peak16:.0f} GFLOP/s" if peak16 else "bf16: none (bf16 rows use the fp32 peak)"
    print(f"measured FMA peak (best of the probes between shapes): fp32 {peak32:.0f} GFLOP/s, {bf16}")
    for mode, res in results.items():
        print(f"\n== {mode}: {MODE_LINES[mode]}; volconv's threads: {res['route']}")
        print_table(res["rows"], peak32, peak16 or peak32)
        summarize(res["rows"])
    if len(results) == 2:
        summarize_coexistence(results["isolated"]["rows"], results["after-torch"]["rows"])
    if "isolated" in results:
        plot_rows(
            results["isolated"]["rows"],
            args.plot,
            f"conv3d on CPU (isolated): {info['machine']}, {args.threads} threads\n{info['versions']}",
        )


MODE_LINES = {
    "isolated": "torch's OpenMP workers passive (OMP_WAIT_POLICY=PASSIVE), busy-wait pause before each call",
    "after-torch": "each volconv call right after a torch conv, no pause (torch's workers spinning); "
    "torch_cl = after a torch conv, torch_cl_next = right after volconv",
}


def run_mode_in_subprocess(mode: str) -> dict:
    """Runs this script with --worker MODE in a fresh interpreter: the OpenMP
    wait policy is read once, when torch's runtime starts."""
    env = dict(os.environ)
    if mode == "isolated":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        env.pop("OMP_WAIT_POLICY", None)  # torch's default: workers spin after each op
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rows.json")
        subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--worker", mode, "--json", out], env=env, check=True
        )
        with open(out) as f:
            return json.load(f)


def run_worker(args, jobs):
    try:
        import mlx.core  # noqa: F401

        want_mlx = not args.no_mlx and args.worker == "isolated"
    except ImportError:
        want_mlx = False
    if args.worker == "after-torch":
        jobs = [(k, d) for k, d in jobs if d == "float32"]
    volconv.set_num_threads(args.threads)
    _core._cpu_allow_openmp(args.route == "auto")
    volconv.set_cpu_winograd(not args.no_winograd)
    peak = PeakProbe()
    peak.measure()
    print(f"[{args.worker}] {len(jobs)} runs ...", file=sys.stderr, flush=True)
    rows = []
    rate = {}
    for key, dtype in jobs:
        runners, flops, out_bytes = make_runners(key, dtype, args.threads, want_mlx)
        if args.worker == "isolated":
            rows += time_isolated(key, dtype, runners, flops, out_bytes, rate, args)
        else:
            rows += time_after_torch(key, dtype, runners, flops, args)
        del runners
        peak.measure()
    with open(args.json, "w") as f:
        json.dump(
            dict(
                rows=rows,
                peak32=peak.fp32,
                peak16=peak.bf16,
                machine=machine(),
                versions=versions(want_mlx),
                route=_core._cpu_parallel_route(),
            ),
            f,
        )


def rounds_for(ref_seconds: float, repeats: int) -> int:
    """Short shapes get more rounds (up to 25, ~0.4 s of the reference): their
    best-of-n is otherwise at the mercy of a noisy machine."""
    return min(25, max(repeats, int(0.4 / max(ref_seconds, 1e-6))))


def time_isolated(key, dtype, runners, flops, out_bytes, rate, args) -> list[dict]:
    best, mem, skipped = {}, {}, {}
    for fw in runners:
        predicted = flops / 1e9 / rate[(fw, dtype)] if (fw, dtype) in rate else 0.0
        if predicted > args.slow_budget:
            skipped[fw] = predicted
            continue
        try:
            with PeakMemory() as pm:
                t0 = time.perf_counter()
                runners[fw]()
                first = time.perf_counter() - t0
        except (ValueError, RuntimeError) as e:  # e.g. MLX: no groups in 3-D
            skipped[fw] = str(e).split("\n")[0][:60]
            continue
        mem[fw] = None if pm.mib is None else max(0.0, pm.mib - out_bytes / 2**20)
        best[fw] = first
        rate[(fw, dtype)] = flops / first / 1e9
    # Interleaved repeats: each round runs every framework once, so load
    # from other processes hits all of them alike. Slow ones (> 1 s) run once.
    for _ in range(rounds_for(best.get("torch_cl", best.get("volconv", 1.0)), args.repeats)):
        for fw in best:
            if best[fw] > 1.0:
                continue
            busy_wait(args.pause)
            t0 = time.perf_counter()
            runners[fw]()
            best[fw] = min(best[fw], time.perf_counter() - t0)
    return [
        dict(
            shape=key,
            dtype=dtype,
            fw=fw,
            ms=best.get(fw, math.nan) * 1e3,
            flops=flops,
            mem=mem.get(fw),
            skipped=skipped.get(fw),
        )
        for fw in FRAMEWORKS
        if fw in best or fw in skipped
    ]


def time_after_torch(key, dtype, runners, flops, args) -> list[dict]:
    """Rounds of volconv, torch_cl, torch_cl, back to back: volconv runs right
    after a torch conv (the previous round's), the first torch_cl right after
    volconv, the second right after torch."""
    vc_run, torch_run = runners["volconv"], runners["torch_cl"]
    torch_run()
    t0 = time.perf_counter()
    vc_run()
    first = time.perf_counter() - t0
    torch_run()
    best = dict(volconv=math.inf, torch_cl=math.inf, torch_cl_next=math.inf)
    for _ in range(rounds_for(first, args.repeats)):
        for fw, run in (("volconv", vc_run), ("torch_cl_next", torch_run), ("torch_cl", torch_run)):
            t0 = time.perf_counter()
            run()
            best[fw] = min(best[fw], time.perf_counter() - t0)
    return [
        dict(shape=key, dtype=dtype, fw=fw, ms=best[fw] * 1e3, flops=flops, mem=None, skipped=None)
        for fw in AFTER_TORCH_FRAMEWORKS
    ]


def summarize_coexistence(isolated, after):
    """volconv after torch vs isolated (target >= 0.95x), and torch's next op
    after volconv vs after torch (volconv must not slow it)."""
    iso = {(r["shape"], r["dtype"]): r["ms"] for r in isolated if r["fw"] == "volconv" and not r["skipped"]}
    aft = {(r["shape"], r["dtype"], r["fw"]): r["ms"] for r in after}
    vc = {s: iso[(s, d)] / aft[(s, d, "volconv")] for (s, d, f) in aft if f == "volconv" and (s, d) in iso}
    nxt = {s: aft[(s, d, "torch_cl")] / aft[(s, d, "torch_cl_next")] for (s, d, f) in aft if f == "torch_cl"}
    print("\ncoexistence (float32):")
    for name, ratios in (
        ("volconv after torch / isolated   ", vc),
        ("torch right after volconv / after torch", nxt),
    ):
        if ratios:
            geo = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
            worst = min(ratios, key=ratios.get)
            each = " ".join(f"{k} {v:.2f}" for k, v in ratios.items())
            print(f"  {name}: geomean {geo:5.2f}x, min {ratios[worst]:5.2f}x ({worst});  {each}")


def print_table(rows, peak32, peak16):
    ref = {(r["shape"], r["dtype"]): r["ms"] for r in rows if r["fw"] == "torch_cl"}
    print(
        f"\n{'shape':5} {'dtype':8} {'framework':13} {'ms':>10} {'GFLOP/s':>8} {'%peak':>6} {'x torch_cl':>10} "
        f"{'extra MiB':>9}"
    )
    over = False
    for r in rows:
        if r["skipped"]:
            why = r["skipped"] if isinstance(r["skipped"], str) else f"predicted {r['skipped']:.0f} s/call"
            print(f"{r['shape']:5} {r['dtype']:8} {r['fw']:13} {'skipped':>10}  ({why})")
            continue
        gf = r["flops"] / r["ms"] / 1e6
        peak = peak16 if r["dtype"] == "bfloat16" else peak32
        t = ref.get((r["shape"], r["dtype"]), math.nan)
        mem = "n/a" if r["mem"] is None else f"{r['mem']:.1f}"
        over = over or gf > peak
        print(
            f"{r['shape']:5} {r['dtype']:8} {r['fw']:13} {r['ms']:10.2f} {gf:8.1f} {100 * gf / peak:5.0f}% "
            f"{t / r['ms']:9.2f}x {mem:>9}"
        )
    if over:
        print(
            "(% of peak above 100%: the probe (a chain of FMAs on every thread) still ran slower than that conv, "
            "e.g. at a lower clock or beside other processes on a shared machine; the kernels cannot beat the "
            "hardware. Rerun on a quiet machine for a tighter peak.)"
        )


def summarize(rows):
    by = {(r["shape"], r["dtype"], r["fw"]): r["ms"] for r in rows if not r["skipped"]}
    print("\nvolconv speed-up (time of the other / time of volconv):")
    for dtype in ("float32", "bfloat16", "float16"):
        for other in ("torch_cl", "torch", "mlx"):
            ratios = {
                s: by[(s, d, other)] / by[(s, d, "volconv")]
                for (s, d, f) in by
                if d == dtype and f == other and (s, d, "volconv") in by
            }
            if not ratios:
                continue
            geo = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
            worst = min(ratios, key=ratios.get)
            print(
                f"  {dtype:8} vs {other:8}: geomean {geo:6.2f}x, min {ratios[worst]:6.2f}x ({worst}) "
                f"over {len(ratios)} shapes"
            )


def plot_rows(rows, path, title):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'volconv[bench]')")
        return
    from conv3d_cpu_plot import plot

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plot(rows, path, title)
    print(f"plot saved to {path}")


if __name__ == "__main__":
    main()
