"""A fused conv block on the CPU: conv3d + bias + relu + residual on
1x16x56x56x64 -> 64, k3, p1 (fp32), volconv's fused epilogue against the
same composition in PyTorch (channels_last_3d): F.conv3d with its bias, then
relu, then the add, both as new tensors and in place. Threads: 2 by default,
PyTorch's OpenMP workers passive (OMP_WAIT_POLICY=PASSIVE, as a host
process sharing the cores would set).

Prints a table: median ms over the repeats, speed-up over the unfused
PyTorch sequence, and the extra peak resident memory of one call (measured
in a fresh process per variant, output included, so caches cannot hide it).

    python bench/conv3d_block_cpu.py
    python bench/conv3d_block_cpu.py --threads 4 --repeats 20
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
from conv3d_cpu import PeakMemory, busy_wait  # noqa: E402

import volconv  # noqa: E402
from volconv import _core  # noqa: E402

SHAPE, C_OUT, K = (1, 16, 56, 56, 64), 64, 3


def make_runners(threads: int) -> dict:
    """One closure per variant on the same inputs (channels-last memory for
    everyone: torch's tensors are NDHWC views of the same layout)."""
    import torch

    F = torch.nn.functional
    torch.set_num_threads(threads)
    volconv.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(-1, 1, SHAPE).astype(np.float32))
    w = torch.from_numpy(rng.uniform(-1, 1, (C_OUT, K, K, K, SHAPE[4])).astype(np.float32) / 40)
    b = torch.from_numpy(rng.uniform(-1, 1, C_OUT).astype(np.float32))
    r = torch.from_numpy(rng.uniform(-1, 1, (*SHAPE[:4], C_OUT)).astype(np.float32))
    # NDHWC tensors seen as NCDHW: exactly torch's channels_last_3d.
    tx, tw, tr = (t.permute(0, 4, 1, 2, 3) for t in (x, w, r))
    assert tx.is_contiguous(memory_format=torch.channels_last_3d)

    def torch_cl():
        y = F.conv3d(tx, tw, b, padding=1)
        return F.relu(y) + tr

    return {
        "volconv_fused": lambda: volconv.conv3d(x, w, padding=1, bias=b, activation="relu", residual=r),
        "volconv_then_torch": lambda: F.relu(volconv.conv3d(x, w, padding=1) + b) + r,
        # The convolution alone: what the fused epilogue adds on top of it.
        "volconv_conv_only": lambda: volconv.conv3d(x, w, padding=1),
        "torch_cl": torch_cl,
        "torch_cl_inplace": lambda: F.conv3d(tx, tw, b, padding=1).relu_().add_(tr),
    }


def as_ndhwc(y):
    """Every variant's result as an NDHWC numpy array."""
    return (y.permute(0, 2, 3, 4, 1) if y.shape[1] == C_OUT and y.shape[4] != C_OUT else y).numpy()


def peak_memory_mib(variant: str, threads: int) -> float | None:
    """Extra peak RSS of the first call of `variant`, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-of", variant, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout.strip().splitlines()[-1]
    return None if text == "None" else float(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls per variant (median reported)")
    ap.add_argument(
        "--pause", type=float, default=0.02, help="seconds of busy waiting before each timed call"
    )
    ap.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    runners = make_runners(args.threads)
    if args.memory_of:
        with PeakMemory() as m:
            y = runners[args.memory_of]()
        del y
        print(m.mib)
        return

    import torch

    ref = as_ndhwc(runners["torch_cl"]())
    for name, run in runners.items():
        if name == "volconv_conv_only":
            continue
        err = np.abs(as_ndhwc(run()) - ref).max()
        assert err < 1e-4, f"{name} differs from torch by {err}"
    times = {name: [] for name in runners}
    for _ in range(args.repeats):  # interleaved: drift hits every variant alike
        for name, run in runners.items():
            busy_wait(args.pause)
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
    print(
        f"conv3d+bias+relu+residual, {SHAPE} -> {C_OUT}, k{K} p1, fp32, {args.threads} threads, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; volconv {volconv.__version__} "
        f"({_core._cpu_isa()}), torch {torch.__version__}; median of {args.repeats}"
    )
    print(f"\n{'variant':20} {'ms':>9} {'x torch_cl':>10} {'peak extra MiB':>15}")
    for name in runners:
        mib = peak_memory_mib(name, args.threads)
        mem = f"{mib:15.1f}" if mib is not None else f"{'n/a':>15}"
        print(f"{name:20} {ms[name]:9.2f} {ms['torch_cl'] / ms[name]:10.2f} {mem}")
    print(f"\n(output alone: {np.prod(SHAPE[:4]) * C_OUT * 4 / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
