"""A small 3D U-Net trained with MLX on volconv: volconv.mlx.nn layers
(conv, strided conv down, transposed conv up, groups, fused bias + silu),
mlx.nn.value_and_grad and an mlx optimizer, on synthetic volumes.

    python examples/unet3d_mlx.py [--steps 30] [--size 16] [--native]

--native trains the same model built from mx.conv3d / mx.conv_transpose3d
(groups split and concatenated, as MLX has none in 3-D), for comparison."""

from __future__ import annotations

import argparse
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

import volconv.mlx.nn as vcnn


class NativeConv3d(nn.Module):
    """mlx.nn.Conv3d's parameters with groups and an activation, on
    mx.conv3d: the reference model's layer (MLX refuses groups in 3-D, so
    each group is its own conv, concatenated)."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        bias=True,
        *,
        groups=1,
        activation=None,
    ):
        super().__init__()
        k = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
        self.weight = mx.zeros((out_channels, *k, in_channels // groups))
        if bias:
            self.bias = mx.zeros((out_channels,))
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.activation = groups, activation

    def conv(self, x, w):
        return mx.conv3d(x, w, self.stride, self.padding, self.dilation)

    def __call__(self, x):
        g = self.groups
        cig, cog = x.shape[-1] // g, self.weight.shape[0] // g
        parts = [
            self.conv(x[..., i * cig : (i + 1) * cig], self.weight[i * cog : (i + 1) * cog]) for i in range(g)
        ]
        y = parts[0] if g == 1 else mx.concatenate(parts, axis=-1)
        if "bias" in self:
            y = y + self.bias
        return nn.silu(y) if self.activation == "silu" else y


class NativeConvTranspose3d(NativeConv3d):
    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        output_padding=0,
        bias=True,
        *,
        groups=1,
        activation=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            bias,
            groups=groups,
            activation=activation,
        )
        self.output_padding = output_padding

    def conv(self, x, w):
        return mx.conv_transpose3d(x, w, self.stride, self.padding, self.dilation, self.output_padding)


VOLCONV_LAYERS = (vcnn.Conv3d, vcnn.ConvTranspose3d)
NATIVE_LAYERS = (NativeConv3d, NativeConvTranspose3d)


class UNet3D(nn.Module):
    """Two levels: a full conv and a grouped conv per level (bias + silu), a
    stride-2 conv down, a stride-2 transposed conv up (grouped), the skip
    concatenated, a 1x1x1 head."""

    def __init__(self, in_channels=2, out_channels=1, width=8, groups=2, layers=VOLCONV_LAYERS):
        super().__init__()
        Conv, ConvT = layers
        w = width
        self.enc = [
            Conv(in_channels, w, 3, padding=1, activation="silu"),
            Conv(w, w, 3, padding=1, groups=groups, activation="silu"),
        ]
        self.down = Conv(w, 2 * w, 3, stride=2, padding=1, activation="silu")
        self.mid = Conv(2 * w, 2 * w, 3, padding=1, groups=groups, activation="silu")
        self.up = ConvT(2 * w, w, 2, stride=2, groups=groups)
        self.dec = [
            Conv(2 * w, w, 3, padding=1, activation="silu"),
            Conv(w, w, 3, padding=1, groups=groups, activation="silu"),
        ]
        self.head = Conv(w, out_channels, 1)

    def __call__(self, x):
        for layer in self.enc:
            x = layer(x)
        skip = x
        x = self.mid(self.down(x))
        x = mx.concatenate([self.up(x), skip], axis=-1)
        for layer in self.dec:
            x = layer(x)
        return self.head(x)


def synthetic_batch(batch=2, size=16, in_channels=2, seed=0):
    """Noisy volumes and their target: a smooth field of the clean channels
    (a denoising-style regression the U-Net can fit)."""
    key = mx.random.key(seed)
    k1, k2 = mx.random.split(key)
    grid = mx.linspace(-1.0, 1.0, size)
    d, h, w = grid[:, None, None], grid[None, :, None], grid[None, None, :]
    phase = mx.random.uniform(-1.0, 1.0, (batch, 1, 1, 1, in_channels), key=k1)
    clean = mx.sin(3.0 * (d + h * w)[None, ..., None] + 3.0 * phase)
    x = clean + 0.3 * mx.random.normal(clean.shape, key=k2)
    y = clean.mean(axis=-1, keepdims=True)
    return x, y


def loss_fn(model, x, y):
    return nn.losses.mse_loss(model(x), y)


def train(model, x, y, steps=30, lr=3e-3, log=print):
    """Adam on the MSE loss; returns the loss of each step."""
    optimizer = optim.Adam(learning_rate=lr)
    step = nn.value_and_grad(model, loss_fn)
    losses = []
    for i in range(steps):
        loss, grads = step(model, x, y)
        optimizer.update(model, grads)
        mx.eval(model.parameters(), optimizer.state, loss)
        losses.append(loss.item())
        if log and (i % 5 == 0 or i == steps - 1):
            log(f"step {i:3d}  loss {losses[-1]:.5f}")
    return losses


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--native", action="store_true", help="the mx.conv3d model instead")
    args = parser.parse_args()
    mx.random.seed(0)
    model = UNet3D(layers=NATIVE_LAYERS if args.native else VOLCONV_LAYERS)
    if args.native:  # NativeConv3d starts at zero: take volconv's initial weights
        model.update(UNet3D().parameters())
    x, y = synthetic_batch(size=args.size)
    t0 = time.perf_counter()
    losses = train(model, x, y, args.steps)
    print(f"{args.steps} steps in {time.perf_counter() - t0:.2f} s: loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
