"""Arithmetic intensity of the Metal conv3d kernels, measured in the MSL
emulator (no GPU here): per shape, the plan the planner chooses and the
kernel's FLOPs per byte of device memory it reads and writes, next to the
roofline bound (input + weight + output each moved once).

Device bytes are every load and store the kernel issues to device buffers
(counted by the emulator, before any GPU cache). Running a whole grid in the
emulator takes minutes per shape, so by default only every s-th threadgroup
runs (about --samples of them, spread evenly over the grid) and the bytes
are scaled by threadgroups-in-grid / threadgroups-run; --samples 0 runs the
whole grid (exact). The shapes and the plan are the full, unscaled ones.

    python bench/metal_intensity.py [--samples 12] [--dtypes float32,float16] [--plot out.png]

A second table (--training, the default; --no-training skips it) gives the
training families on small geometries, whole grids: for each geometry the
forward conv3d, its input gradient (stride-phase dispatches), its weight
gradient (partial sums + reduction) and conv_transpose3d of the same
weight, each as useful FLOPs (2 * N * Do * Ho * Wo * C_out * K * C_in/groups,
the same for every direction) per device byte over all of a plan's dispatches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

import msl_emulator  # noqa: E402  (found through the sys.path line above)
import training_emulator  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from conv3d_cpu import SHAPES  # noqa: E402  (issue 6's shapes, shared with the CPU benchmark)

ESIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


def measure(emu, name, dtype, samples):
    x_shape, c_out, kernel, *spd, groups = SHAPES[name]
    stride, pad, dil = (v if isinstance(v, tuple) else (v, v, v) for v in spd)
    w_shape = (c_out, *kernel, x_shape[4] // groups)
    params = {"stride": stride, "pad_lo": pad, "pad_hi": pad, "dilation": dil, "groups": groups}
    plan = emu.plan(x_shape, w_shape, dtype, **params)
    total = plan["grid"][0] * plan["grid"][1] * plan["grid"][2]
    sample_stride = 1 if samples <= 0 else max(1, total // samples)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, x_shape).astype(np.float32)
    w = rng.uniform(-1, 1, w_shape).astype(np.float32)
    y, (read, written, run, total) = emu.run(x, w, dtype, sample_stride=sample_stride, **params)
    scale = total / run
    device_bytes = (read + written) * scale
    e = ESIZE[dtype]
    min_bytes = (x.size + w.size + y.size) * e
    return {
        "shape": name,
        "dtype": dtype,
        "plan": plan,
        "run": run,
        "total": total,
        "device_bytes": device_bytes,
        "min_bytes": min_bytes,
        "flops": plan["flops"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=12, help="threadgroups to run per shape (0: whole grid)")
    ap.add_argument("--dtypes", default="float32", help="comma-separated: float32,float16,bfloat16")
    ap.add_argument("--shapes", default="".join(SHAPES), help="subset of shape letters, e.g. ace")
    ap.add_argument("--plot", default=str(ROOT / "bench" / "results" / "metal_intensity.png"))
    ap.add_argument(
        "--training", action=argparse.BooleanOptionalAction, default=True, help="the training table"
    )
    args = ap.parse_args()

    emu = msl_emulator.load()
    rows = []
    header = (
        f"{'shape':5} {'dtype':8} {'kernel':40} {'tile':14} {'tg':>4} {'grid':>18} {'tgmem':>6} "
        f"{'tg run':>11} {'FLOP/B':>8} {'roof':>8} {'%roof':>6}"
    )
    print(
        "Arithmetic intensity of the planned Metal kernels (MSL emulator; device bytes scaled from the "
        "threadgroups run to the whole grid)"
    )
    print(header)
    print("-" * len(header))
    for dtype in args.dtypes.split(","):
        for name in args.shapes:
            r = measure(emu, name, dtype, args.samples)
            p = r["plan"]
            tile = f"{p['bm']}x{p['bn']}x{p['bk']}" if p["bk"] else f"{p['bm']}x{p['bn']}"
            grid = "x".join(str(v) for v in p["grid"])
            intensity = r["flops"] / r["device_bytes"]
            roof = r["flops"] / r["min_bytes"]
            r.update(intensity=intensity, roof=roof)
            rows.append(r)
            print(
                f"{name:5} {dtype:8} {p['kernel']:40} {tile:14} {p['threadgroup'][0]:>4} {grid:>18} "
                f"{p['threadgroup_memory']:>6} {r['run']:>5}/{r['total']:<5} {intensity:8.1f} {roof:8.1f} "
                f"{100 * intensity / roof:5.1f}%",
                flush=True,
            )
    print(
        "\nFLOP/B: FLOPs per device byte the kernel moves; roof: FLOPs per byte if input, weight and output "
        "each crossed device memory once (the bound no kernel can beat)."
    )
    plot(rows, args.plot)
    if args.training:
        training_table(emu, args.dtypes.split(",")[0])


# (name, input shape, C_out, kernel, stride, padding, groups): small enough to
# run whole grids in the emulator.
TRAINING_GEOMETRIES = [
    ("k3s1_c16", (1, 6, 6, 6, 16), 16, 3, 1, 1, 1),
    ("k3s2_c16_32", (1, 8, 8, 8, 16), 32, 3, 2, 1, 1),
    ("k2s2_c32", (1, 6, 6, 6, 32), 32, 2, 2, 0, 1),
    ("dw_k3s2_c32", (1, 8, 8, 8, 32), 32, 3, 2, 1, 32),
]


def training_table(emu, dtype):
    temu = training_emulator.TrainingEmulator(emu)
    print(f"\nTraining families ({dtype}; whole grids): FLOPs per device byte, all dispatches of the plan")
    header = f"{'geometry':14} {'direction':34} {'kernels':72} {'disp':>4} {'FLOP/B':>8} {'fwd FLOP/B':>10}"
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for name, x_shape, c_out, k, s, pad, groups in TRAINING_GEOMETRIES:
        w_shape = (c_out, k, k, k, x_shape[4] // groups)
        conv = {"stride": (s,) * 3, "pad_lo": (pad,) * 3, "pad_hi": (pad,) * 3, "groups": groups}
        x = rng.uniform(-1, 1, x_shape).astype(np.float32)
        w = rng.uniform(-1, 1, w_shape).astype(np.float32)
        y, (read, written) = emu.conv3d(x, w, dtype, **conv)
        flops = emu.plan(x_shape, w_shape, dtype, **conv)["flops"]
        forward = flops / (read + written)
        gy = rng.uniform(-1, 1, y.shape).astype(np.float32)
        w_t = rng.uniform(-1, 1, (x_shape[4], k, k, k, c_out // groups)).astype(np.float32)
        runs = [
            ("conv3d (forward)", None),
            ("conv3d_grad_input", ("conv3d_grad_input", gy, w, x_shape)),
            ("conv3d_grad_weight", ("conv3d_grad_weight", x, gy, w_shape)),
            ("conv_transpose3d (of grad_output)", ("conv_transpose3d", gy, w_t, None)),
        ]
        for direction, call in runs:
            if call is None:
                kernels = emu.plan(x_shape, w_shape, dtype, **conv)["kernel"]
                print(f"{name:14} {direction:34} {kernels:72} {1:>4} {forward:8.1f} {forward:10.1f}")
                continue
            op, a, b, c_shape = call
            plan = temu.plan(op, a.shape, b.shape, dtype, c_shape, **conv)
            _, (read, written, _, dispatches) = temu.run(op, a, b, dtype, c_shape, **conv)
            kernels = ", ".join(sorted({d["kernel"] for d in plan["dispatches"]}))
            print(
                f"{name:14} {direction:34} {kernels:72} {dispatches:>4} {flops / (read + written):8.1f} {forward:10.1f}"
            )
    print(
        "disp: dispatches in the plan (stride phases; partial sums + reduction). conv_transpose3d runs on "
        "grad_output with a (C_in, k, C_out/groups) weight: the input gradient's geometry, weight read as stored."
    )


def plot(rows, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return
    labels = [f"{r['shape']} {r['dtype']}" for r in rows]
    xs = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.7), 4))
    ax.bar(xs - 0.2, [r["intensity"] for r in rows], 0.4, label="kernel (emulator)")
    ax.bar(xs + 0.2, [r["roof"] for r in rows], 0.4, label="roofline bound")
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("FLOPs per device byte")
    ax.set_title("volconv Metal conv3d: arithmetic intensity")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


if __name__ == "__main__":
    main()
