"""Calls that must NOT type-check: tests/test_typing.py expects a mypy error
on exactly the lines marked `# error`, and none elsewhere."""

from __future__ import annotations

import numpy as np
import torch

import volconv as vc

x = np.zeros((1, 4, 5, 6, 2), np.float32)
w = np.zeros((3, 3, 3, 3, 2), np.float32)

wrong_kind: torch.Tensor = vc.conv3d(x, w)  # error
wrong_kind_back: np.ndarray = vc.conv3d(torch.from_numpy(x), w)  # error
vc.conv3d(x, w, padding="full")  # error
vc.conv3d(x, w, padding=1, padding_mode="mirror")  # error
vc.conv3d(x, w, stride=1.5)  # error
vc.conv3d(x, w, 1, 0, 1, 1, vc.cpu)  # error
vc.conv3d("not an array", w)  # error
vc.conv3d(x, w, stream="cpu")  # error
vc.set_num_threads(2.0)  # error
vc.is_available("gpu")  # error
version: int = vc.__version__  # error


class ArrayWithAt:
    """Shaped like mlx.core.array (see typed_usage.py)."""

    @property
    def at(self) -> object:
        return None

    def __dlpack__(self, *, stream: int | None = None) -> object:
        return None


mlx_as_numpy: np.ndarray = vc.conv3d(ArrayWithAt(), w)  # error
