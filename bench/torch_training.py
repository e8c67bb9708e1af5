"""Training steps (forward + backward) through volconv.torch against
torch-native convolutions, both channels_last_3d, fp32, on the CPU:

- resnet_block: a 3D ResNet basic block (conv3x3x3 + relu, conv3x3x3 +
  identity + relu), 2x32x16x32x32, without normalisation;
- unet: the 3D U-Net of examples/unet3d_torch.py (width 16), 2x2x32x32x32.

A step is forward, a mean-square loss and backward into freshly zeroed
gradients (no optimizer). Threads: 2 by default for both libraries, torch's
OpenMP workers passive (OMP_WAIT_POLICY=PASSIVE). Prints the median step
time, the speed-up over torch, and the extra peak resident memory of one
step (each measured in a fresh process); saves a plot beside this script.

    python bench/torch_training.py
    python bench/torch_training.py --threads 4 --repeats 10 --plot out.png
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))
from conv3d_cpu import PeakMemory, busy_wait, machine  # noqa: E402
from unet3d_torch import UNet3d  # noqa: E402

import volconv  # noqa: E402
import volconv.torch as vt  # noqa: E402
from volconv import _core  # noqa: E402

CL3D = torch.channels_last_3d
IMPLS = ("torch", "volconv")


class ResNetBlock(torch.nn.Module):
    def __init__(self, c: int, use_volconv: bool) -> None:
        super().__init__()
        self.volconv = use_volconv
        Conv = vt.nn.Conv3d if use_volconv else torch.nn.Conv3d
        extra = {"activation": "relu"} if use_volconv else {}
        self.conv1 = Conv(c, c, 3, padding=1, **extra)
        self.conv2 = Conv(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.volconv:
            h = self.conv1(x)  # relu fused (inference) or torch's relu (training)
            c2 = self.conv2
            return F.relu(vt.conv3d(h, c2.weight, c2.bias, padding=1, residual=x))
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


WORKLOADS = {
    "resnet_block": (lambda v: ResNetBlock(32, v), (2, 32, 16, 32, 32)),
    "unet": (lambda v: UNet3d(c_in=2, width=16, use_volconv=v), (2, 2, 32, 32, 32)),
}


def make_step(workload: str, impl: str):
    """A closure running one training step; the same weights for both impls."""
    build, shape = WORKLOADS[workload]
    torch.manual_seed(0)
    model = build(impl == "volconv")
    ref = build(False)
    model.load_state_dict(ref.state_dict())
    model = model.to(memory_format=CL3D)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).contiguous(memory_format=CL3D)

    def step():
        for p in model.parameters():
            p.grad = None
        loss = model(x).square().mean()
        loss.backward()
        return loss

    return model, step


def peak_memory_mib(workload: str, impl: str, threads: int) -> float | None:
    """Extra peak RSS of one step after a warm-up step, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-of", f"{workload}:{impl}", "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout.strip().splitlines()[-1]
    return None if text == "None" else float(text)


def plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = [r[0] for r in rows]
    xs = np.arange(len(names))
    for ax, col, label in ((axes[0], 1, "ms per step (median)"), (axes[1], 3, "extra peak MiB per step")):
        for i, impl in enumerate(IMPLS):
            vals = [r[col + i] if r[col + i] is not None else 0 for r in rows]
            ax.bar(xs + (i - 0.5) * 0.38, vals, 0.38, label=impl)
        ax.set_xticks(xs, names)
        ax.set_ylabel(label)
    axes[0].legend(loc="upper left")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per variant (median reported)")
    ap.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ",".join(WORKLOADS)
    )
    ap.add_argument("--plot", type=Path, default=HERE / "torch_training.png")
    ap.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    volconv.set_num_threads(args.threads)
    if args.memory_of:
        workload, impl = args.memory_of.split(":")
        _, step = make_step(workload, impl)
        step()
        with PeakMemory() as m:
            step()
        print(m.mib)
        return

    rows = []
    for workload in args.workloads.split(","):
        models, steps = {}, {}
        for impl in IMPLS:
            models[impl], steps[impl] = make_step(workload, impl)
        losses = {impl: steps[impl]().item() for impl in IMPLS}  # warm-up, and the same loss
        assert abs(losses["volconv"] - losses["torch"]) <= 1e-4 * abs(losses["torch"]), losses
        times = {impl: [] for impl in IMPLS}
        for _ in range(args.repeats):  # interleaved: drift hits both alike
            for impl in IMPLS:
                busy_wait(0.02)
                t0 = time.perf_counter()
                steps[impl]()
                times[impl].append(time.perf_counter() - t0)
        ms = [1e3 * float(np.median(times[impl])) for impl in IMPLS]
        mib = [peak_memory_mib(workload, impl, args.threads) for impl in IMPLS]
        rows.append((workload, *ms, *mib))

    title = (
        f"forward+backward, fp32, channels_last_3d, {args.threads} threads, "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; {machine()}; volconv {volconv.__version__} "
        f"({_core._cpu_isa()}), torch {torch.__version__}; median of {args.repeats}"
    )
    print(title)
    print(
        f"\n{'workload':14} {'torch ms':>9} {'volconv ms':>11} {'speed-up':>9} {'torch MiB':>10} {'volconv MiB':>12}"
    )
    for name, t_ms, v_ms, t_mib, v_mib in rows:
        fmt = lambda v: f"{v:.1f}" if v is not None else "n/a"  # noqa: E731
        print(f"{name:14} {t_ms:9.1f} {v_ms:11.1f} {t_ms / v_ms:9.2f} {fmt(t_mib):>10} {fmt(v_mib):>12}")
    plot(rows, args.plot, title)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
