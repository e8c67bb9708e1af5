"""Calls a user writes, which must type-check (tests/test_typing.py runs mypy
on this file): each result is of the input's kind."""

from __future__ import annotations

import numpy as np
import torch

import volconv as vc

x = np.zeros((1, 4, 5, 6, 2), np.float32)
w = np.zeros((3, 3, 3, 3, 2), np.float32)

y: np.ndarray = vc.conv3d(x, w)
y = vc.conv3d(x, w, [1, 2, 1], padding=np.int64(1), dilation=(1, 1, 1), groups=np.int32(1))
y = vc.conv3d(x, w, padding=((1, 0, 1), [0, 1, 0]), stream=vc.cpu)
y = vc.conv3d(x, w, padding="same", stream=vc.default_stream(vc.Device(vc.cpu)))
y = vc.conv3d(x, w, padding=1, padding_mode="reflect")
y = vc.conv3d(x, w, padding=((2, 1, 1), (0, 1, 1)), padding_mode=("replicate", "zeros", "circular"))

packed: vc.PackedConv3dWeights = vc.pack_conv3d_weights(w, padding=1, input_dtype="float32")
y = vc.conv3d(x, packed, padding=1)

t: torch.Tensor = vc.conv3d(torch.from_numpy(x), torch.from_numpy(w), stride=2)
t = vc.conv3d(torch.from_numpy(x), w, padding="valid")

version: str = vc.__version__
vc.set_num_threads(np.int64(2))
threads: int = vc.get_num_threads()
available: bool = vc.is_available(vc.gpu)
reason: str = vc.unavailable_reason(vc.Device(vc.gpu))
s: vc.Stream = vc.new_stream(vc.cpu)
with vc.stream(s) as inner:
    vc.synchronize(inner)


class ArrayWithAt:
    """Shaped like mlx.core.array as MLX's stubs describe it (macOS wheels
    ship them): conv3d must return this same type."""

    @property
    def at(self) -> object:
        return None

    def __dlpack__(self, *, stream: int | None = None) -> object:
        return None


m: ArrayWithAt = vc.conv3d(ArrayWithAt(), w)
