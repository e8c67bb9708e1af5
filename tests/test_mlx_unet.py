"""examples/unet3d_mlx.py: its first step's gradients equal those of the same
model built from mx.conv3d / mx.conv_transpose3d (groups split and
concatenated), and training it decreases the loss."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
nn = pytest.importorskip("mlx.nn")
from mlx.utils import tree_flatten  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import unet3d_mlx as example  # noqa: E402


def test_first_step_gradients_match_the_mlx_native_model():
    mx.random.seed(3)
    ours = example.UNet3D(width=4, groups=2)
    theirs = example.UNet3D(width=4, groups=2, layers=example.NATIVE_LAYERS)
    theirs.update(ours.parameters())
    x, y = example.synthetic_batch(batch=2, size=8, seed=1)
    loss_ours, g_ours = nn.value_and_grad(ours, example.loss_fn)(ours, x, y)
    loss_theirs, g_theirs = nn.value_and_grad(theirs, example.loss_fn)(theirs, x, y)
    assert abs(loss_ours.item() - loss_theirs.item()) <= 1e-5 * loss_theirs.item()
    got, want = dict(tree_flatten(g_ours)), dict(tree_flatten(g_theirs))
    assert got.keys() == want.keys() and len(want) == 16  # 8 layers, weight and bias each
    for k in want:
        a, b = np.asarray(got[k]), np.asarray(want[k])
        err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)
        assert err <= 1e-4, f"{k}: {err:.3g}"


def test_training_decreases_the_loss():
    mx.random.seed(0)
    model = example.UNet3D(width=4, groups=2)
    x, y = example.synthetic_batch(batch=2, size=8)
    losses = example.train(model, x, y, steps=30, log=None)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses
