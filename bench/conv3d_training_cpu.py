"""CPU training-direction benchmark, as benchdnn's --dir: one shape list, a
direction flag. volconv vs PyTorch (oneDNN, channels_last_3d) vs MLX CPU,
interleaved in one process on the same inputs.

Directions (every shape is a forward conv3d: x -> y):
  fwd        y = conv3d(x, w)                        torch F.conv3d, mx.conv3d
  bwd_d      dx = conv3d_grad_input(dy, w)           aten.convolution_backward, mx.vjp (wrt x)
  bwd_w      dw = conv3d_grad_weight(x, dy)          aten.convolution_backward, mx.vjp (wrt w)
  transpose  x' = conv_transpose3d(y, w'), the adjoint geometry (output_padding chosen
             so that x' has x's shape)               F.conv_transpose3d, mx.conv_transpose3d
MLX has no groups in 3-D: its grouped / depthwise runs are skipped.

Shapes: a, c, e, f, h, i of bench/conv3d_cpu.py, and the decoder upsampling
shapes written as their forward convs:
  up1  transpose 1x8x28x28x128 -> 64, k2 s2          (forward 1x16x56x56x64 -> 128)
  up2  transpose 1x16x28x28x64 -> 32, k3 s2 p1 op1   (forward 1x32x56x56x32 -> 64)
  dw2  1x16x56x56x64 depthwise k3 s2 p1 (transpose: output_padding 1)
and two convs of the U-Net of examples/unet3d_torch.py (width 16, batch 2):
  u1   2x32x32x32x2 -> 16, k3 p1 (its first conv: few input channels)
  u2   2x32x32x32x32 -> 16, k3 p1 (its last 3x3x3 conv)

Prints ms, GFLOP/s (the forward's 2 x MACs for every direction), volconv's
speed-up over each framework and the extra peak memory of one call: the
resident-set high-water mark (VmHWM, reset through /proc/self/clear_refs,
Linux) above the resident size before the call, less the result's bytes. It
sees every native allocation (oneDNN's, MLX's, ours), which tracemalloc
would not. Saves a bar chart (bench/conv3d_cpu_plot.py) beside this script
or where --plot says.

    OMP_WAIT_POLICY=PASSIVE python bench/conv3d_training_cpu.py --threads 2
    python bench/conv3d_training_cpu.py --dir bwd_d,bwd_w --shapes f,dw2
    python bench/conv3d_training_cpu.py --quick          # tiny sizes, one repeat: a smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv3d_cpu as fwd_bench  # noqa: E402

import volconv  # noqa: E402

# name: (N, D, H, W, C_in) of the forward input, C_out, kernel, stride, padding, dilation, groups
SHAPES = {k: fwd_bench.SHAPES[k] for k in ("a", "c", "e", "f", "h", "i")}
SHAPES.update(
    {
        "up1": ((1, 16, 56, 56, 64), 128, (2, 2, 2), 2, 0, 1, 1),
        "up2": ((1, 32, 56, 56, 32), 64, (3, 3, 3), 2, 1, 1, 1),
        "dw2": ((1, 16, 56, 56, 64), 64, (3, 3, 3), 2, 1, 1, 64),
        # the U-Net of examples/unet3d_torch.py (width 16, batch 2): its first conv, few C_in
        "u1": ((2, 32, 32, 32, 2), 16, (3, 3, 3), 1, 1, 1, 1),
        "u2": ((2, 32, 32, 32, 32), 16, (3, 3, 3), 1, 1, 1, 1),  # its last 3x3x3 conv (dec1)
    }
)
DIRS = ["fwd", "bwd_d", "bwd_w", "transpose"]
FRAMEWORKS = ["volconv", "torch_cl", "mlx"]
DEFAULT_PLOT = Path(__file__).resolve().with_suffix(".png")  # beside this script; git-ignored


def key_list(valid):
    def parse(text: str) -> list[str]:
        keys = [k.strip() for k in text.split(",") if k.strip()]
        unknown = [k for k in keys if k not in valid]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {','.join(unknown)}; valid: {','.join(valid)}")
        return keys

    return parse


def t3(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def geometry(key: str, quick: bool):
    """The shape's forward geometry; --quick shrinks D, H, W by 4 (at least
    what the kernel needs) so a whole run takes seconds."""
    shape, c_out, k, s, p, d, g = SHAPES[key]
    k, s, p, d = t3(k), t3(s), t3(p), t3(d)
    if quick:
        spatial = [max(sz // 4, d[i] * (k[i] - 1) + 1 + s[i]) for i, sz in enumerate(shape[1:4])]
        shape = (shape[0], *spatial, shape[4])
    out = tuple((shape[1 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3))
    # conv_transpose3d(y) has x's size with this output_padding
    op = tuple(shape[1 + i] - ((out[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1) for i in range(3))
    return shape, c_out, k, s, p, d, g, out, op


def make_runners(key, direction, dtype, quick, want_mlx):
    """One closure per framework running `direction` on prepared inputs, the
    flops, and the result's bytes."""
    import torch
    import torch.nn.functional as F

    shape, c_out, k, s, p, d, g, out, op = geometry(key, quick)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = rng.uniform(-1, 1, (c_out, *k, shape[4] // g)).astype(np.float32)
    gy = rng.uniform(-1, 1, (shape[0], *out, c_out)).astype(np.float32)
    # conv_transpose3d's weight (C_out = x's channels, K, C_in / groups): random, shaped as the op wants
    wt = rng.uniform(-1, 1, (shape[4], *k, c_out // g)).astype(np.float32)
    if dtype == "bfloat16":
        import ml_dtypes

        np_dt = ml_dtypes.bfloat16
    else:
        np_dt = np.dtype(dtype)
    xv, wv, gv, wtv = (a.astype(np_dt) for a in (x, w, gy, wt))
    t_dt = getattr(torch, dtype)
    cl = torch.channels_last_3d

    def tt(a):  # NDHWC numpy -> NCDHW torch in channels_last_3d memory (a zero-copy view)
        return torch.from_numpy(a).to(t_dt).permute(0, 4, 1, 2, 3).contiguous(memory_format=cl)

    tx, tw, tg = tt(x), tt(w), tt(gy)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tg, tx, tw, None, list(s), list(p), list(d), False, [0, 0, 0], g, mask
        )

    if direction == "fwd":
        runners = {
            "volconv": lambda: volconv.conv3d(xv, wv, **kw),
            "torch_cl": lambda: F.conv3d(tx, tw, **kw),
        }
    elif direction == "bwd_d":
        runners = {
            "volconv": lambda: volconv.conv3d_grad_input(gv, wv, shape, **kw),
            "torch_cl": torch_backward([True, False, False]),
        }
    elif direction == "bwd_w":
        runners = {
            "volconv": lambda: volconv.conv3d_grad_weight(xv, gv, w.shape, **kw),
            "torch_cl": torch_backward([False, True, False]),
        }
    else:
        runners = {
            "volconv": lambda: volconv.conv_transpose3d(gv, wtv, output_padding=op, **kw),
            # torch's transposed weight (C_in, C_out / groups, K...) is the forward weight
            "torch_cl": lambda: F.conv_transpose3d(
                tg, tw, stride=s, padding=p, output_padding=op, groups=g, dilation=d
            ),
        }
    if want_mlx:
        import mlx.core as mx

        mx.set_default_device(mx.cpu)
        mx_dt = getattr(mx, dtype)
        mxx, mxw, mxg, mxwt = (mx.array(a).astype(mx_dt) for a in (x, w, gy, wt))
        mx.eval(mxx, mxw, mxg, mxwt)
        mkw = dict(stride=s, padding=p, dilation=d)
        if g != 1:
            runners["mlx"] = "MLX: no groups in 3-D"
        elif direction == "fwd":
            runners["mlx"] = lambda: mx.eval(mx.conv3d(mxx, mxw, **mkw))
        elif direction == "bwd_d":
            runners["mlx"] = lambda: mx.eval(mx.vjp(lambda a: mx.conv3d(a, mxw, **mkw), [mxx], [mxg])[1])
        elif direction == "bwd_w":
            runners["mlx"] = lambda: mx.eval(mx.vjp(lambda b: mx.conv3d(mxx, b, **mkw), [mxw], [mxg])[1])
        else:
            runners["mlx"] = lambda: mx.eval(mx.conv_transpose3d(mxg, mxwt, output_padding=op, **mkw))
    flops = 2.0 * math.prod(gy.shape) * math.prod(k) * (shape[4] // g)
    result = {"fwd": gy, "bwd_d": x, "bwd_w": w, "transpose": x}[direction]
    return runners, flops, result.size * np.dtype(np_dt).itemsize


def measure(jobs, args, want_mlx):
    rate = {}  # (framework, direction, dtype) -> GFLOP/s seen so far, to predict slow calls
    rows = []
    for key, direction, dtype in jobs:
        runners, flops, out_bytes = make_runners(key, direction, dtype, args.quick, want_mlx)
        best, mem, skipped = {}, {}, {}
        for fw, run in runners.items():
            if isinstance(run, str):
                skipped[fw] = run
                continue
            predicted = flops / 1e9 / rate[(fw, direction, dtype)] if (fw, direction, dtype) in rate else 0.0
            if predicted > args.slow_budget:
                skipped[fw] = predicted
                continue
            with fwd_bench.PeakMemory() as pm:
                t0 = time.perf_counter()
                run()
                first = time.perf_counter() - t0
            mem[fw] = None if pm.mib is None else max(0.0, pm.mib - out_bytes / 2**20)
            best[fw] = first
            rate[(fw, direction, dtype)] = flops / first / 1e9
        # Interleaved rounds: each runs every framework once, so load from
        # other processes hits all alike; calls over 1 s run once.
        for _ in range(args.repeats):
            for fw in best:
                if best[fw] > 1.0:
                    continue
                fwd_bench.busy_wait(args.pause)
                t0 = time.perf_counter()
                runners[fw]()
                best[fw] = min(best[fw], time.perf_counter() - t0)
        for fw in FRAMEWORKS:
            if fw in best or fw in skipped:
                rows.append(
                    dict(
                        shape=f"{key}:{direction}",
                        dtype=dtype,
                        fw=fw,
                        ms=best.get(fw, math.nan) * 1e3,
                        flops=flops,
                        mem=mem.get(fw),
                        skipped=skipped.get(fw),
                    )
                )
        del runners
    return rows


def print_table(rows):
    by = {(r["shape"], r["dtype"], r["fw"]): r for r in rows}
    print(
        f"\n{'shape:dir':14} {'dtype':8} {'framework':9} {'ms':>10} {'GFLOP/s':>8} {'volconv x':>9} "
        f"{'extra MiB':>9}"
    )
    for r in rows:
        head = f"{r['shape']:14} {r['dtype']:8} {r['fw']:9}"
        if r["skipped"]:
            why = r["skipped"] if isinstance(r["skipped"], str) else f"predicted {r['skipped']:.0f} s/call"
            print(f"{head} {'skipped':>10}  ({why})")
            continue
        ours = by.get((r["shape"], r["dtype"], "volconv"))
        ratio = r["ms"] / ours["ms"] if ours and not ours["skipped"] else math.nan
        mem = "n/a" if r["mem"] is None else f"{r['mem']:.1f}"
        print(f"{head} {r['ms']:10.2f} {r['flops'] / r['ms'] / 1e6:8.1f} {ratio:8.2f}x {mem:>9}")
    print("\n(volconv x: the framework's time / volconv's; > 1 means volconv is faster)")
    print("volconv speed-up, geomean and min over shapes, per direction:")
    for direction in DIRS:
        for dtype in sorted({r["dtype"] for r in rows}):
            for other in FRAMEWORKS[1:]:
                ratios = {
                    r["shape"]: r["ms"] / by[(r["shape"], dtype, "volconv")]["ms"]
                    for r in rows
                    if r["fw"] == other
                    and r["dtype"] == dtype
                    and r["shape"].endswith(":" + direction)
                    and not r["skipped"]
                    and (r["shape"], dtype, "volconv") in by
                }
                if ratios:
                    geo = math.exp(sum(math.log(v) for v in ratios.values()) / len(ratios))
                    worst = min(ratios, key=ratios.get)
                    print(
                        f"  {direction:9} {dtype:8} vs {other:8}: geomean {geo:7.2f}x, "
                        f"min {ratios[worst]:7.2f}x ({worst}), {len(ratios)} shapes"
                    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--shapes", type=key_list(list(SHAPES)), default=list(SHAPES), help="comma-separated keys"
    )
    ap.add_argument("--dir", type=key_list(DIRS), default=DIRS, help="comma-separated: " + ",".join(DIRS))
    ap.add_argument(
        "--dtypes",
        type=key_list(["float32", "bfloat16", "float16"]),
        default=["float32"],
        help="default float32",
    )
    ap.add_argument("--quick", action="store_true", help="spatial sizes / 4 and one repeat: a smoke run")
    ap.add_argument("--dry-run", action="store_true", help="print the (shape, dir, dtype) runs and exit")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (best is reported)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--no-mlx", action="store_true")
    ap.add_argument(
        "--slow-budget",
        type=float,
        default=20.0,
        help="skip a framework predicted slower than this per call (s)",
    )
    ap.add_argument("--pause", type=float, default=0.03, help="busy wait before each timed call (s)")
    ap.add_argument("--plot", default=str(DEFAULT_PLOT), help=f"where the PNG goes (default {DEFAULT_PLOT})")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 1
    jobs = [(k, d, t) for t in args.dtypes for d in args.dir for k in args.shapes]
    if args.dry_run:
        for job in jobs:
            print(*job)
        return
    want_mlx = False
    if not args.no_mlx:
        try:
            import mlx.core  # noqa: F401

            want_mlx = True
        except ImportError:
            pass
    import torch

    torch.set_num_threads(args.threads)
    volconv.set_num_threads(args.threads)
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    header = f"{fwd_bench.machine()}, {args.threads} threads, OMP_WAIT_POLICY={wait}"
    print(f"{header}; {fwd_bench.versions(want_mlx)}")
    rows = measure(jobs, args, want_mlx)
    print_table(rows)
    fwd_bench.plot_rows(
        rows, args.plot, f"conv3d training directions on CPU: {header}\n{fwd_bench.versions(want_mlx)}"
    )


if __name__ == "__main__":
    main()
