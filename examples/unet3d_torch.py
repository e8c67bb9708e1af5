"""A small 3D U-Net trained with volconv.torch layers on synthetic volumes.

The model uses every volconv.torch piece a segmentation net needs: 3x3x3
convs with bias and a fused SiLU, strided convs down, grouped convs, and
transposed convs up. The same class built with torch.nn layers (use_volconv
=False) loads the same state_dict, so the two can be compared step by step.

Run: python examples/unet3d_torch.py [--steps 30]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import volconv
import volconv.torch as vt


class ConvSiLU(torch.nn.Module):
    """conv + bias + SiLU: one fused volconv call, or torch.nn.Conv3d then F.silu."""

    def __init__(self, c_in: int, c_out: int, use_volconv: bool, **kw) -> None:
        super().__init__()
        self.fused = use_volconv
        if use_volconv:
            self.conv = vt.nn.Conv3d(c_in, c_out, 3, padding=kw.pop("padding", 1), activation="silu", **kw)
        else:
            self.conv = torch.nn.Conv3d(c_in, c_out, 3, padding=kw.pop("padding", 1), **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y if self.fused else F.silu(y)


class UNet3d(torch.nn.Module):
    """Two levels down (stride-2 convs), two up (transposed convs), skip
    connections by concatenation; grouped convs in the middle."""

    def __init__(self, c_in: int = 2, c_out: int = 1, width: int = 8, use_volconv: bool = True) -> None:
        super().__init__()
        w = width
        ConvT = vt.nn.ConvTranspose3d if use_volconv else torch.nn.ConvTranspose3d
        Conv = vt.nn.Conv3d if use_volconv else torch.nn.Conv3d
        block = lambda a, b, **kw: ConvSiLU(a, b, use_volconv, **kw)  # noqa: E731
        self.enc1 = block(c_in, w)
        self.down1 = block(w, 2 * w, stride=2)
        self.enc2 = block(2 * w, 2 * w, groups=2)
        self.down2 = block(2 * w, 4 * w, stride=2)
        self.mid = block(4 * w, 4 * w, groups=4)
        self.up2 = ConvT(4 * w, 2 * w, 2, stride=2)
        self.dec2 = block(4 * w, 2 * w)
        self.up1 = ConvT(2 * w, w, 2, stride=2)
        self.dec1 = block(2 * w, w)
        self.head = Conv(w, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.down1(e1))
        m = self.mid(self.down2(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def synthetic_batch(batch: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy volumes holding a few balls (input: noisy ball + a gradient
    channel) and the clean ball mask (target)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, size)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    masks = []
    for _ in range(batch):
        m = torch.zeros(size, size, size)
        for _ in range(3):
            c = torch.rand(3, generator=g) * 1.2 - 0.6
            r = 0.15 + 0.25 * torch.rand((), generator=g)
            m = torch.maximum(m, (((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r**2).float())
        masks.append(m)
    target = torch.stack(masks)[:, None]
    noisy = target + 0.5 * torch.randn(target.shape, generator=g)
    x = torch.cat([noisy, zz.expand_as(noisy)], dim=1)
    cl = torch.channels_last_3d
    return x.contiguous(memory_format=cl), target.contiguous(memory_format=cl)


def train(
    model: torch.nn.Module, steps: int, batch: int = 2, size: int = 16, lr: float = 3e-3
) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        x, target = synthetic_batch(batch, size, seed=step)
        loss = F.mse_loss(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = UNet3d().to(memory_format=torch.channels_last_3d)
    start = time.perf_counter()
    losses = train(model, args.steps)
    seconds = time.perf_counter() - start
    print(f"volconv {volconv.__version__}, torch {torch.__version__}: {args.steps} steps in {seconds:.1f} s")
    for i in range(0, len(losses), 5):
        print(f"step {i:3d}  loss {losses[i]:.4f}")
    print(f"final    loss {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
