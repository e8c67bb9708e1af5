"""volconv.mlx.nn layers against mlx.nn's: the same positional arguments and
parameters (weights saved from mlx.nn load unchanged, outputs and gradients
agree), groups / padding_mode / activation keyword-only."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")
from mlx.utils import tree_flatten  # noqa: E402

import volconv.mlx.nn as vcnn  # noqa: E402


def assert_trees_close(got, want, tol):
    got, want = dict(tree_flatten(got)), dict(tree_flatten(want))
    assert got.keys() == want.keys()
    for k in want:
        a, b = np.asarray(got[k]), np.asarray(want[k])
        assert a.shape == b.shape, k
        assert np.abs(a - b).max() <= tol * max(np.abs(b).max(), 1e-30), k


LAYERS = [
    # (mlx.nn class, volconv class, positional args, input shape)
    (mlx_nn.Conv3d, vcnn.Conv3d, (4, 6, 3, 2, 1, 1, True), (2, 7, 6, 5, 4)),
    (mlx_nn.Conv3d, vcnn.Conv3d, (3, 5, (3, 1, 2), 1, (1, 0, 1), 2, False), (1, 6, 5, 6, 3)),
    (mlx_nn.ConvTranspose3d, vcnn.ConvTranspose3d, (4, 6, 3, 2, 1, 1, 1, True), (2, 3, 4, 3, 4)),
    (mlx_nn.ConvTranspose3d, vcnn.ConvTranspose3d, (3, 2, 2, 2, 0, 1, 0, False), (1, 3, 3, 2, 3)),
]


@pytest.mark.parametrize("theirs_cls, ours_cls, args, shape", LAYERS)
def test_weights_saved_from_mlx_nn_load_and_agree(theirs_cls, ours_cls, args, shape, tmp_path):
    theirs = theirs_cls(*args)
    if "bias" in theirs:
        theirs.bias = mx.random.normal(theirs.bias.shape)
    path = str(tmp_path / "layer.safetensors")
    theirs.save_weights(path)
    ours = ours_cls(*args)
    ours.load_weights(path)  # strict: the same names and shapes
    x = mx.random.normal(shape)
    assert (
        np.abs(np.asarray(ours(x)) - np.asarray(theirs(x))).max()
        <= 2e-5 * np.abs(np.asarray(theirs(x))).max()
    )
    loss = lambda m, x: (m(x) ** 2).sum()
    (_, g_ours), (_, g_theirs) = (mlx_nn.value_and_grad(m, loss)(m, x) for m in (ours, theirs))
    assert_trees_close(g_ours, g_theirs, 3e-5)


def test_extras_are_keyword_only_and_shape_the_weight():
    layer = vcnn.Conv3d(8, 12, 3, padding=1, groups=4, padding_mode="reflect", activation="relu")
    assert layer.weight.shape == (12, 3, 3, 3, 2) and layer.bias.shape == (12,)
    up = vcnn.ConvTranspose3d(8, 4, 2, stride=2, groups=2, activation="silu")
    assert up.weight.shape == (4, 2, 2, 2, 4)
    y = layer(mx.random.normal((1, 4, 4, 4, 8)))
    assert y.shape == (1, 4, 4, 4, 12) and (np.asarray(y) >= 0).all()
    assert up(y[..., :8]).shape == (1, 8, 8, 8, 4)
    with pytest.raises(TypeError):
        vcnn.Conv3d(8, 12, 3, 1, 1, 1, True, 4)  # groups is not positional
    with pytest.raises(ValueError, match=r"\[Conv3d\] Expected groups to divide"):
        vcnn.Conv3d(8, 12, 3, groups=5)
    with pytest.raises(ValueError, match=r"\[ConvTranspose3d\] Expected padding_mode to be 'zeros'"):
        vcnn.ConvTranspose3d(8, 4, 2, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"\[Conv3d\] Expected activation"):
        vcnn.Conv3d(8, 12, 3, activation="gelu")
