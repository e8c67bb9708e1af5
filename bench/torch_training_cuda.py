"""Training steps (forward + backward) on an NVIDIA GPU through
volconv.torch's depthwise layers against torch.nn's (cuDNN), both
channels_last_3d, cudnn.benchmark on, TF32 off:

- convnext: a 3D ConvNeXt-style block, depthwise 3x3x3 (C) -> pointwise
  C -> 4C -> GELU -> pointwise 4C -> C, plus the identity;
- separable: three depthwise 3x3x3 convs with bias and SiLU;
- unet: examples/unet3d_torch.py (width 32), every conv volconv's: dense
  and strided 3x3x3 convs with SiLU, transposed k2 s2 convs up, a 1x1x1
  head. On CUDA volconv.torch runs these dense problems on torch's own
  cuDNN calls, so this one shows what its layers cost around them.

In the first two only the depthwise layers differ (vt.nn.Conv3d against
torch.nn.Conv3d); the pointwise ones are torch.nn's in both models. A step is forward, a
mean-square loss and backward into freshly zeroed gradients (no optimizer).
Prints the median step time over CUDA events, the speed-up over torch and
the peak GPU memory of a step; saves a plot beside this script.

    python bench/torch_training_cuda.py
    python bench/torch_training_cuda.py --dtypes float32 --shapes 1x64x16x56x56 --repeats 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import volconv
import volconv.torch as vt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
CL3D = torch.channels_last_3d
IMPLS = ("torch", "volconv")


class ConvNeXtBlock(torch.nn.Module):
    def __init__(self, c: int, depthwise: type) -> None:
        super().__init__()
        self.dw = depthwise(c, c, 3, padding=1, groups=c)
        self.up = torch.nn.Conv3d(c, 4 * c, 1)
        self.down = torch.nn.Conv3d(4 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.gelu(self.up(self.dw(x)), approximate="tanh"))


class Separable(torch.nn.Module):
    def __init__(self, c: int, depthwise: type) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(depthwise(c, c, 3, padding=1, groups=c) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.silu(conv(x))
        return x


def _unet(c: int, use_volconv: bool) -> torch.nn.Module:
    from unet3d_torch import UNet3d

    return UNet3d(c_in=c, width=32, use_volconv=use_volconv)


# Each builds the model from (channels, whether volconv's layers stand in).
WORKLOADS = {
    "convnext": lambda c, v: ConvNeXtBlock(c, vt.nn.Conv3d if v else torch.nn.Conv3d),
    "separable": lambda c, v: Separable(c, vt.nn.Conv3d if v else torch.nn.Conv3d),
    "unet": _unet,
}


def make_step(workload: str, impl: str, shape: tuple[int, ...], dtype: torch.dtype):
    torch.manual_seed(0)
    build = WORKLOADS[workload]
    ref = build(shape[1], False)
    model = build(shape[1], impl == "volconv")
    model.load_state_dict(ref.state_dict())
    model = model.to(device="cuda", dtype=dtype, memory_format=CL3D)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to("cuda", dtype)
    x = x.contiguous(memory_format=CL3D)

    def step():
        for p in model.parameters():
            p.grad = None
        loss = model(x).float().square().mean()
        loss.backward()
        return loss

    return step


def time_steps(step, repeats: int) -> float:
    """Median ms of `repeats` steps, each between two CUDA events."""
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def peak_mib(step) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    names = [f"{r['workload']}\n{r['shape']}\n{r['dtype']}" for r in rows]
    xs = np.arange(len(names))
    for i, impl in enumerate(IMPLS):
        ax.bar(xs + (i - 0.5) * 0.38, [r[impl] for r in rows], 0.38, label=impl)
    ax.set_xticks(xs, names, fontsize=7)
    ax.set_ylabel("ms per training step (median)")
    ax.legend()
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--shapes", default="1x64x16x56x56,2x128x32x64x64", help="NxCxDxHxW, comma-separated")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--plot", type=Path, default=HERE / "torch_training_cuda.png")
    args = ap.parse_args()
    if not torch.cuda.is_available() or volconv._core._gpu_backend() != "cuda":
        sys.exit(f"no CUDA GPU for volconv here: {volconv.unavailable_reason(volconv.gpu)}")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    rows = []
    for workload in args.workloads.split(","):
        for shape_text in args.shapes.split(","):
            shape = tuple(int(s) for s in shape_text.split("x"))
            for dtype_name in args.dtypes.split(","):
                dtype = getattr(torch, dtype_name)
                steps = {impl: make_step(workload, impl, shape, dtype) for impl in IMPLS}
                losses = {impl: steps[impl]().item() for impl in IMPLS}  # warm-up (and cuDNN's search)
                for impl in IMPLS:
                    steps[impl]()
                tol = 1e-4 if dtype == torch.float32 else 3e-2
                assert abs(losses["volconv"] - losses["torch"]) <= tol * abs(losses["torch"]), losses
                row = dict(workload=workload, shape=shape_text, dtype=dtype_name)
                for _ in range(2):  # interleaved halves: drift hits both alike
                    for impl in IMPLS:
                        row.setdefault(f"{impl}_runs", []).append(time_steps(steps[impl], args.repeats // 2))
                for impl in IMPLS:
                    row[impl] = float(np.median(row.pop(f"{impl}_runs")))
                    row[f"{impl}_mib"] = peak_mib(steps[impl])
                rows.append(row)

    title = (
        f"forward+backward on {torch.cuda.get_device_name()}, channels_last_3d, cudnn.benchmark, TF32 off; "
        f"volconv {volconv.__version__}, torch {torch.__version__}; median of {args.repeats}"
    )
    print(title)
    print(
        f"\n{'workload':10} {'shape':15} {'dtype':9} {'torch ms':>9} {'volconv ms':>11} {'speed-up':>9} "
        f"{'torch MiB':>10} {'volconv MiB':>12}"
    )
    for r in rows:
        print(
            f"{r['workload']:10} {r['shape']:15} {r['dtype']:9} {r['torch']:9.3f} {r['volconv']:11.3f} "
            f"{r['torch'] / r['volconv']:9.2f} {r['torch_mib']:10.1f} {r['volconv_mib']:12.1f}"
        )
    plot(rows, args.plot, title)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
