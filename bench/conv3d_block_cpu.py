"""Fused conv blocks on the CPU, fp32: volconv's fused epilogue and padding
modes against the same composition in PyTorch (channels_last_3d) and MLX
(mx.pad, mx.conv3d, then the element-wise ops):

  relu_residual: conv3d + bias + relu + residual, 1x16x56x56x64 -> 64, k3, p1;
  silu_causal:   conv3d + bias + silu, 1x8x64x64x128 -> 128, k3, causal
                 replicate padding ((2, 1, 1), (0, 1, 1)): PyTorch and MLX pad
                 a copy of the input first (F.pad / mx.pad), volconv reads the
                 padding in place (padding_mode="replicate").

Threads: 2 by default, PyTorch's OpenMP workers passive
(OMP_WAIT_POLICY=PASSIVE, as a host process sharing the cores would set);
MLX's CPU backend picks its own threads.

Prints a table per block: median ms over the repeats, speed-up over the
unfused PyTorch sequence, and the extra peak resident memory of one call
(measured in a fresh process per variant, output included, so caches cannot
hide it). Saves a plot beside the script (git-ignored) unless --plot "".

    python bench/conv3d_block_cpu.py
    python bench/conv3d_block_cpu.py --blocks silu_causal --threads 4 --repeats 20 --no-mlx
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from conv3d_cpu import PeakMemory, busy_wait, machine, versions  # noqa: E402

import volconv  # noqa: E402

# (input shape NDHWC, C_out, k, padding lo, padding hi, padding mode)
BLOCKS = {
    "relu_residual": ((1, 16, 56, 56, 64), 64, 3, (1, 1, 1), (1, 1, 1), "zeros"),
    "silu_causal": ((1, 8, 64, 64, 128), 128, 3, (2, 1, 1), (0, 1, 1), "replicate"),
}


def make_runners(block: str, threads: int, want_mlx: bool) -> dict:
    """One closure per variant on the same inputs (channels-last memory for
    everyone: torch's tensors are NDHWC views of the same layout)."""
    import torch

    shape, c_out, k, lo, hi, mode = BLOCKS[block]
    F = torch.nn.functional
    torch.set_num_threads(threads)
    volconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, shape).astype(np.float32))
    w = torch.from_numpy(rng.uniform(-1, 1, (c_out, k, k, k, shape[4])).astype(np.float32) / 40)
    b = torch.from_numpy(rng.uniform(-1, 1, c_out).astype(np.float32))
    r = torch.from_numpy(rng.uniform(-1, 1, (*shape[:4], c_out)).astype(np.float32))
    # NDHWC tensors seen as NCDHW: exactly torch's channels_last_3d.
    tx, tw, tr = (t.permute(0, 4, 1, 2, 3) for t in (x, w, r))
    assert tx.is_contiguous(memory_format=torch.channels_last_3d)
    pad = (lo, hi)
    # F.pad's order: (W lo, W hi, H lo, H hi, D lo, D hi).
    torch_pad = (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])

    if block == "relu_residual":
        runners = {
            "volconv_fused": lambda: volconv.conv3d(x, w, padding=pad, bias=b, activation="relu", residual=r),
            "volconv_then_torch": lambda: F.relu(volconv.conv3d(x, w, padding=pad) + b) + r,
            # The convolution alone: what the fused epilogue adds on top of it.
            "volconv_conv_only": lambda: volconv.conv3d(x, w, padding=pad),
            "torch_cl": lambda: F.relu(F.conv3d(tx, tw, b, padding=1)) + tr,
            "torch_cl_inplace": lambda: F.conv3d(tx, tw, b, padding=1).relu_().add_(tr),
        }
    else:

        def torch_cl():
            xp = F.pad(tx, torch_pad, mode=mode)  # the padded copy
            return F.silu(F.conv3d(xp, tw, b))

        runners = {
            "volconv_fused": lambda: volconv.conv3d(
                x, w, padding=pad, padding_mode=mode, bias=b, activation="silu"
            ),
            "volconv_conv_only": lambda: volconv.conv3d(x, w, padding=pad, padding_mode=mode),
            "torch_cl": torch_cl,
            "torch_cl_inplace": lambda: F.silu(
                F.conv3d(F.pad(tx, torch_pad, mode=mode), tw, b), inplace=True
            ),
        }
    if want_mlx:
        import mlx.core as mx

        mx.set_default_device(mx.cpu)
        mxx, mxw, mxb, mxr = (mx.array(t.numpy()) for t in (x, w, b, r))
        mx.eval(mxx, mxw, mxb, mxr)
        # mx.pad: "constant" (zeros) or "edge" (replicate); MLX's conv pads
        # only with zeros, so other modes go through a padded copy.
        widths = [(0, 0), (lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2]), (0, 0)]

        def run_mlx():
            if mode == "zeros":
                y = mx.conv3d(mxx, mxw, padding=1) + mxb
            else:
                assert mode == "replicate"
                y = mx.conv3d(mx.pad(mxx, widths, mode="edge"), mxw) + mxb
            y = mx.maximum(y, 0) + mxr if block == "relu_residual" else y * mx.sigmoid(y)
            mx.eval(y)
            return y

        runners["mlx"] = run_mlx
    return runners


def as_ndhwc(y, c_out: int) -> np.ndarray:
    """Every variant's result as an NDHWC numpy array."""
    if hasattr(y, "permute"):
        return (y.permute(0, 2, 3, 4, 1) if y.shape[1] == c_out and y.shape[4] != c_out else y).numpy()
    return np.asarray(y)


def peak_memory_mib(block: str, variant: str, threads: int) -> float | None:
    """Extra peak RSS of the first call of `variant`, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-of", f"{block}:{variant}", "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout.strip().splitlines()[-1]
    return None if text == "None" else float(text)


def time_block(block: str, args, want_mlx: bool) -> dict:
    shape, c_out, k, lo, hi, mode = BLOCKS[block]
    runners = make_runners(block, args.threads, want_mlx)
    ref = as_ndhwc(runners["torch_cl"](), c_out)
    for name, run in runners.items():
        if name == "volconv_conv_only":
            continue
        err = np.abs(as_ndhwc(run(), c_out) - ref).max()
        assert err < 1e-4, f"{block}: {name} differs from torch by {err}"
    times = {name: [] for name in runners}
    for i in range(args.repeats):  # interleaved: drift hits every variant alike
        for name, run in runners.items():
            if name == "mlx" and i >= args.mlx_repeats:
                continue  # MLX's CPU conv is 10-50x slower: a few calls tell
            busy_wait(args.pause)
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    what = "bias+relu+residual" if block == "relu_residual" else "bias+silu"
    print(
        f"\n{block}: conv3d+{what}, {shape} -> {c_out}, k{k}, padding {lo} {hi} {mode}, fp32; "
        f"median of {args.repeats}"
    )
    print(f"{'variant':20} {'ms':>9} {'x torch_cl':>10} {'peak extra MiB':>15}")
    mem = {}
    for name in runners:
        mem[name] = peak_memory_mib(block, name, args.threads)
        m = f"{mem[name]:15.1f}" if mem[name] is not None else f"{'n/a':>15}"
        print(f"{name:20} {ms[name]:9.2f} {ms['torch_cl'] / ms[name]:10.2f} {m}")
    out_mib = np.prod(shape[:4]) * c_out * 4 / 2**20
    padded = np.prod([shape[1 + i] + lo[i] + hi[i] for i in range(3)]) * shape[4] * 4 / 2**20
    note = f"; the padded input copy: {padded:.1f} MiB" if mode != "zeros" else ""
    print(f"(output alone: {out_mib:.1f} MiB{note})")
    return {"ms": ms, "mem": mem}


def plot(results: dict, title: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (block, r) in zip(axes[0], results.items()):
        names = list(r["ms"])
        ax.barh(
            names,
            [r["ms"][n] for n in names],
            color=["C0" if n.startswith("volconv") else "C1" for n in names],
        )
        for i, n in enumerate(names):
            mib = r["mem"].get(n)
            ax.text(
                r["ms"][n],
                i,
                f" {r['ms'][n]:.0f} ms" + (f", {mib:.0f} MiB" if mib is not None else ""),
                va="center",
            )
        ax.set_xscale("log")  # MLX's CPU conv is tens of times slower
        ax.set_xlabel("median ms, log scale (lower is better)")
        ax.set_title(block)
        ax.invert_yaxis()
        ax.set_xlim(0.5 * min(r["ms"].values()), 8 * max(r["ms"].values()))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", default=",".join(BLOCKS), help="comma-separated: " + ", ".join(BLOCKS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per variant (median reported)")
    ap.add_argument(
        "--pause", type=float, default=0.02, help="seconds of busy waiting before each timed call"
    )
    ap.add_argument("--no-mlx", action="store_true")
    ap.add_argument("--mlx-repeats", type=int, default=2, help="timed MLX calls (at most --repeats)")
    ap.add_argument("--plot", default=os.path.join(os.path.dirname(__file__), "conv3d_block_cpu.png"))
    ap.add_argument(
        "--no-winograd", action="store_true", help="volconv's CPU plans skip the winograd path (to compare)"
    )
    ap.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    volconv.set_cpu_winograd(not args.no_winograd)
    try:
        import mlx.core  # noqa: F401

        want_mlx = not args.no_mlx
    except ImportError:
        want_mlx = False
    if args.memory_of:
        block, variant = args.memory_of.split(":")
        runners = make_runners(block, args.threads, variant == "mlx")
        with PeakMemory() as m:
            y = runners[variant]()
        del y
        print(m.mib)
        return

    blocks = [b for b in args.blocks.split(",") if b]
    for b in blocks:
        if b not in BLOCKS:
            ap.error(f"unknown block {b!r}; known: {', '.join(BLOCKS)}")
    title = (
        f"{machine()}, {args.threads} threads, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
        f"{versions(want_mlx)}"
    )
    print(title)
    results = {b: time_block(b, args, want_mlx) for b in blocks}
    if args.plot:
        plot(results, title, args.plot)


if __name__ == "__main__":
    main()
