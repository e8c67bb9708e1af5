"""volconv.torch layers under DistributedDataParallel: two processes (gloo,
CPU, loopback) each take half of a batch through the 3D U-Net of
examples/unet3d_torch.py; after one backward pass, DDP's averaged gradients
must equal those of one process on the whole batch. This is how a volconv
model scales past one machine: on the distributed engine torch already has.

Run: python examples/ddp_torch.py   (exit status 0 when the gradients agree)
"""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import volconv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unet3d_torch import UNet3d, synthetic_batch  # noqa: E402

WORLD = 2
BATCH = 4  # split evenly: the mean of the ranks' mean losses is the whole batch's mean


def model_and_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = UNet3d(width=4)
    x, target = synthetic_batch(BATCH, 8, seed=0)
    return model, x, target


def rank_main(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # two processes on the machine's cores
    volconv.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model, x, target = model_and_batch()
        ddp = DistributedDataParallel(model)
        half = BATCH // WORLD
        part = slice(rank * half, (rank + 1) * half)
        F.mse_loss(ddp(x[part]), target[part]).backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in model.named_parameters()}, Path(out_dir) / "ddp_grads.pt")
        # Both ranks finish before either tears gloo down: a rank that destroyed
        # its group while the other still ran was once seen to abort in CI
        # ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(rank_main, args=(free_port(), out_dir), nprocs=WORLD, join=True)
        ddp_grads = torch.load(Path(out_dir) / "ddp_grads.pt")
    model, x, target = model_and_batch()
    F.mse_loss(model(x), target).backward()
    worst = 0.0
    for name, p in model.named_parameters():
        err = (ddp_grads[name] - p.grad).abs().max().item() / max(p.grad.abs().max().item(), 1e-30)
        worst = max(worst, err)
        if not torch.allclose(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-6):
            print(f"MISMATCH {name}: relative error {err:.2e}")
            return 1
    print(
        f"DDP ({WORLD} processes, gloo) gradients equal one process on the whole batch: "
        f"{len(ddp_grads)} parameters, worst relative error {worst:.1e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
