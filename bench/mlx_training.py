"""A training step (forward, backward, Adam update) of the 3D U-Net of
examples/unet3d_mlx.py on the CPU: volconv.mlx against the same model on
mx.conv3d / mx.conv_transpose3d (groups split and concatenated).

    python bench/mlx_training.py [--sizes 16 32] [--width 16] [--batch 1] [--repeats 3]

Where `python -m volconv.mlx.build_primitive` has built the C++ route, both
volconv.mlx routes are timed. Each (model, size) runs in its own process, so the peak resident memory it
reports is its own: "peak RSS" is the process's maximum resident set minus
its resident set before the first step (volconv's buffers are not MLX's, so
mx.get_peak_memory alone would miss them; it is printed too). Time: best
step of --repeats after one warm-up step, wall clock and the process's
CPU time (all its threads: on a shared machine the steadier of the two)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mib() -> float:
    # ru_maxrss: KiB on Linux, bytes on macOS
    scale = 2**20 if sys.platform == "darwin" else 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def one(kind: str, size: int, width: int, batch: int, repeats: int, groups: int = 2) -> dict:
    """Runs in a child process: times the step of one model at one size."""
    sys.path.insert(0, str(ROOT / "examples"))
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from unet3d_mlx import NATIVE_LAYERS, VOLCONV_LAYERS, UNet3D, loss_fn, synthetic_batch

    import volconv.mlx._ops as ops

    mx.set_default_device(mx.cpu)
    mx.random.seed(0)
    if kind == "python":  # the mx.custom_function route even where the primitive is built
        ops.primitive = lambda: None
    model = UNet3D(width=width, groups=groups, layers=NATIVE_LAYERS if kind == "mlx" else VOLCONV_LAYERS)
    if kind == "mlx":
        model.update(UNet3D(width=width, groups=groups).parameters())
    x, y = synthetic_batch(batch=batch, size=size)
    mx.eval(model.parameters(), x, y)
    optimizer = optim.Adam(learning_rate=1e-3)
    value_and_grad = nn.value_and_grad(model, loss_fn)

    def step():
        loss, grads = value_and_grad(model, x, y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)

    rss0 = _rss_mib()
    mx.reset_peak_memory()
    times, cpu_times = [], []
    for _ in range(repeats + 1):
        t, c = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t)
        cpu_times.append(time.process_time() - c)
    return {
        "ms": min(times[1:]) * 1e3,
        "cpu_ms": min(cpu_times[1:]) * 1e3,
        "peak_rss_mib": _maxrss_mib() - rss0,
        "mlx_peak_mib": mx.get_peak_memory() / 2**20,
    }


def breakdown(size: int, width: int, batch: int, groups: int) -> None:
    """CPU time of each volconv kernel call in one volconv.mlx step, summed
    per (op, operand shapes): where the step's time goes."""
    from collections import defaultdict

    import mlx.core as mx

    import volconv as vc
    import volconv.mlx._ops as ops

    spent: dict[str, float] = defaultdict(float)

    def timed(module, name):
        fn = getattr(module, name)

        def call(*args, **kwargs):
            mx.eval(*[a for a in args if isinstance(a, mx.array)])  # the operands' own graphs first
            t = time.process_time()
            out = fn(*args, **kwargs)
            mx.eval(out)
            shapes = " x ".join(str(tuple(a.shape)) for a in args[:2] if hasattr(a, "shape"))
            spent[f"{name.lstrip('_')} {shapes}"] += time.process_time() - t
            return out

        setattr(module, name, call)

    for name in ("conv3d", "conv3d_grad_input", "conv3d_grad_weight", "conv_transpose3d"):
        timed(vc, name)
    for name in ("_conv_transpose3d_grad_input", "_conv_transpose3d_grad_weight"):
        timed(ops, name)
    steps = 3
    result = one("python", size, width, batch, steps - 1, groups)  # a warm-up step and steps - 1 timed
    per_step = {key: seconds / steps for key, seconds in spent.items()}
    print(
        f"one volconv.mlx step at {size}^3, width {width}: {result['cpu_ms']:.0f} ms CPU, of which volconv's "
        f"kernels {sum(per_step.values()) * 1e3:.0f} ms:"
    )
    for key, seconds in sorted(per_step.items(), key=lambda kv: -kv[1])[:12]:
        print(f"{seconds * 1e3:8.1f} ms  {key}")


def versions() -> str:
    import mlx.core as mx

    import volconv as vc

    return f"volconv {vc.__version__} ({vc.get_num_threads()} threads), mlx {mx.__version__}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--groups", type=int, default=2, help="of the U-Net's grouped convs (the example's: 2)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--plot", default=str(ROOT / "bench" / "mlx_training.png"))
    ap.add_argument("--breakdown", type=int, metavar="SIZE", help="per-kernel CPU time of one volconv step")
    ap.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(
            json.dumps(one(args.one[0], int(args.one[1]), args.width, args.batch, args.repeats, args.groups))
        )
        return
    if args.breakdown:
        breakdown(args.breakdown, args.width, args.batch, args.groups)
        return

    print(f"machine: {machine()}")
    print(f"versions: {versions()}, Python {platform.python_version()}")
    print(
        f"U-Net training step (forward + backward + Adam), batch {args.batch}, width {args.width}, "
        f"groups {args.groups}, "
        f"float32, CPU\n"
    )
    from volconv.mlx import route

    kinds = {"python": "volconv.mlx, Python route", "mlx": "MLX (mx.conv3d)"}
    if route() == "primitive":
        kinds = {"primitive": "volconv.mlx, MLX primitive", **kinds}
    header = (
        f"{'volume':>7} | {'':<28} | {'step ms':>8} | {'CPU ms':>8} | {'vs MLX':>6} | {'vs MLX (CPU)':>12} | "
        f"{'peak RSS MiB':>12} | {'mx peak MiB':>11}"
    )
    print(header)
    print("-" * len(header))
    rows: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for size in args.sizes:
        for kind in kinds:
            cmd = [sys.executable, __file__, "--one", kind, str(size), "--width", str(args.width)]
            cmd += ["--batch", str(args.batch), "--repeats", str(args.repeats), "--groups", str(args.groups)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[kind].append(json.loads(out.strip().splitlines()[-1]))
        m = rows["mlx"][-1]
        for kind, label in kinds.items():
            r = rows[kind][-1]
            print(
                f"{size:>4}^3 | {label:<28} | {r['ms']:>8.1f} | {r['cpu_ms']:>8.1f} | {m['ms'] / r['ms']:>5.1f}x | "
                f"{m['cpu_ms'] / r['cpu_ms']:>11.1f}x | {r['peak_rss_mib']:>12.0f} | {r['mlx_peak_mib']:>11.0f}"
            )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib missing: no plot)")
        return
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(args.sizes))
    width = 0.8 / len(kinds)
    for ax, key, title in ((ax_t, "ms", "step time (ms, log)"), (ax_m, "peak_rss_mib", "peak RSS (MiB)")):
        for j, (kind, label) in enumerate(kinds.items()):
            ax.bar(
                [i + (j - (len(kinds) - 1) / 2) * width for i in xs],
                [r[key] for r in rows[kind]],
                width,
                label=label,
            )
        ax.set_xticks(list(xs), [f"{s}^3" for s in args.sizes])
        ax.set_title(title)
        ax.legend()
    ax_t.set_yscale("log")
    fig.suptitle(
        f"U-Net training step, MLX CPU, batch {args.batch}, width {args.width}, groups {args.groups}"
    )
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
