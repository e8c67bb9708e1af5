"""The C++ route of volconv.mlx.conv3d: the mlx::core::Primitive built by
`python -m volconv.mlx.build_primitive` against the installed mlx. Its
forward and gradients match mx.conv3d's (groups split where MLX has none)
and the Python route's; unlike the Python route it runs inside mx.compile;
a module built for another mlx version is not used."""

from __future__ import annotations

import importlib.util
import os
import shutil

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from test_mlx_ops import (  # noqa: E402
    EPILOGUES,
    _mlx_epilogue,
    assert_close,
    epilogue_operands,
    grads_of,
    rand,
    split_groups,
)

import volconv.mlx as vcm  # noqa: E402
from volconv.mlx import _native, _ops  # noqa: E402


def _missing() -> str | None:
    if importlib.util.find_spec("nanobind") is None:
        return "nanobind is not installed (pip install nanobind)"
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if not any(shutil.which(c) for c in (os.environ.get("CXX") or "c++", "g++", "clang++")):
        return "no C++ compiler"
    return None


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """The extension, built once into a fresh cache folder."""
    missing = _missing()
    if missing:
        if os.environ.get("VOLCONV_REQUIRE_CPP_TESTS") == "1":
            pytest.fail(f"VOLCONV_REQUIRE_CPP_TESTS=1 but {missing}")
        pytest.skip(missing)
    cache = tmp_path_factory.mktemp("volconv-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VOLCONV_CACHE_DIR", str(cache))
    mp.delenv(_native.ENV, raising=False)
    _native.primitive.cache_clear()
    _native.build()
    module = _native.primitive()
    assert module is not None, "built, but not loadable (nanobind ABI differs from mlx's?)"
    yield module
    mp.undo()
    _native.primitive.cache_clear()


@pytest.fixture
def on(native, monkeypatch):
    monkeypatch.setattr(_ops, "primitive", lambda: native)
    assert vcm.route() == "primitive"


CASES = [
    ((2, 6, 7, 5, 4), (6, 3, 3, 3, 4), 1, 1, 1, 1),
    ((1, 9, 8, 7, 3), (5, 3, 2, 3, 3), (2, 1, 3), (1, 0, 2), (1, 2, 1), 1),
    ((1, 7, 7, 7, 8), (8, 3, 3, 3, 2), 2, 1, 1, 4),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_primitive_matches_mlx_and_the_python_route(
    on, monkeypatch, xs, ws, stride, padding, dilation, groups
):
    x, w, b = rand(*xs), rand(*ws), rand(ws[0])
    ours = lambda x, w, b: vcm.conv3d(x, w, stride, padding, dilation, groups, bias=b, activation="silu")
    mlx_conv = split_groups(lambda a, c: mx.conv3d(a, c, stride, padding, dilation), groups)
    reference = lambda x, w, b: (lambda z: z * mx.sigmoid(z))(mlx_conv(x, w) + b)
    y = ours(x, w, b)
    assert_close(y, reference(x, w, b), 2e-5, "forward")
    cot = rand(*y.shape)
    got = grads_of(ours, (x, w, b), cot)
    for g, r, what in zip(got, grads_of(reference, (x, w, b), cot), ("input", "weight", "bias")):
        assert_close(g, r, 3e-5, f"d {what} vs MLX")
    compiled = mx.compile(
        lambda x, w, b: mx.grad(lambda *a: (ours(*a) * cot).sum(), argnums=(0, 1, 2))(x, w, b)
    )
    for g, r, what in zip(compiled(x, w, b), got, ("input", "weight", "bias")):
        assert_close(g, r, 1e-6, f"d {what} under mx.compile")
    monkeypatch.setattr(_ops, "primitive", lambda: None)  # the Python route: the same kernels
    for g, r, what in zip(grads_of(ours, (x, w, b), cot), got, ("input", "weight", "bias")):
        assert_close(g, r, 1e-6, f"d {what} vs the Python route")


@pytest.mark.parametrize("has_bias, activation, has_residual", EPILOGUES + [(False, "silu", False)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_epilogue_matches_mlx_and_the_python_route(
    on, monkeypatch, has_bias, activation, has_residual, dtype
):
    """The epilogue runs inside the primitive (fused in the forward; the
    backward recomputes the pre-activation and runs activation_backward):
    every operand's gradient against MLX's own ops, groups split."""
    dt = getattr(mx, dtype)
    stride, padding, groups = 1, 1, 2
    x, w = rand(1, 5, 6, 4, 4, dtype=dt), rand(6, 3, 3, 3, 2, dtype=dt)
    mlx_conv = split_groups(lambda a, c: mx.conv3d(a, c, stride, padding), groups)
    y_shape = mlx_conv(x, w).shape
    arrays, unpack = epilogue_operands(x, w, y_shape, has_bias, has_residual)

    def ours(*a):
        x, w, b, r = unpack(a)
        return vcm.conv3d(x, w, stride, padding, 1, groups, bias=b, activation=activation, residual=r)

    def reference(*a):
        x, w, b, r = unpack(a)
        return _mlx_epilogue(mlx_conv(x, w), b, activation, r)

    tol = 3e-5  # MLX's own float64 conv3d is about float32-accurate on the CPU
    y = ours(*arrays)
    assert y.dtype == dt
    assert_close(y, reference(*arrays), tol, "forward")
    cot = rand(*y_shape, dtype=dt)
    got = grads_of(ours, arrays, cot)
    names = ["input", "weight"] + ["bias"] * has_bias + ["residual"] * has_residual
    for name, g, want in zip(names, got, grads_of(reference, arrays, cot)):
        assert g.dtype == want.dtype == dt, name
        assert_close(g, want, tol, f"d {name} vs MLX")
    monkeypatch.setattr(_ops, "primitive", lambda: None)
    for name, g, want in zip(names, got, grads_of(ours, arrays, cot)):
        assert_close(g, want, 1e-6 if dtype == "float32" else 1e-12, f"d {name} vs the Python route")


def test_relu_passes_the_cotangent_where_the_pre_activation_is_nan(on, monkeypatch):
    """Both routes follow torch's threshold_backward: a NaN pre-activation
    (here from a NaN bias) passes the cotangent; a negative one gives 0."""
    x, w = rand(1, 3, 3, 3, 2), rand(2, 1, 1, 1, 2)
    b = mx.array([float("nan"), -1e6])
    cot = rand(1, 3, 3, 3, 2)
    results = []
    for route in ("primitive", "python"):
        if route == "python":
            monkeypatch.setattr(_ops, "primitive", lambda: None)
        db = mx.grad(lambda b: (vcm.conv3d(x, w, bias=b, activation="relu") * cot).sum())(b)
        results.append(np.asarray(db))
    for db in results:
        assert db[0] == pytest.approx(float(np.asarray(cot)[..., 0].sum()), rel=1e-5) and db[1] == 0.0


def test_transposed_primitive_matches_mlx_and_compiles(on):
    x, w = rand(1, 4, 3, 4, 6), rand(9, 3, 2, 3, 2)
    args = (2, (1, 0, 1), (1, 2, 1), (1, 0, 0), 3)
    ours = lambda x, w: vcm.conv_transpose3d(x, w, *args)
    reference = split_groups(lambda a, b: mx.conv_transpose3d(a, b, *args[:4]), 3)
    y = ours(x, w)
    assert_close(y, reference(x, w), 2e-5, "forward")
    cot = rand(*y.shape)
    got = grads_of(ours, (x, w), cot)
    for g, r, what in zip(got, grads_of(reference, (x, w), cot), ("input", "weight")):
        assert_close(g, r, 3e-5, f"d {what} vs MLX")
    compiled = mx.compile(lambda x, w: mx.grad(lambda *a: (ours(*a) * cot).sum(), argnums=(0, 1))(x, w))
    for g, r, what in zip(compiled(x, w), got, ("input", "weight")):
        assert_close(g, r, 1e-6, f"d {what} under mx.compile")


def test_the_unet_trains_under_mx_compile(on):
    """Every layer of the example on the C++ route: a whole compiled training
    step gives the uncompiled step's gradients."""
    import sys
    from pathlib import Path

    import mlx.nn as nn

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import unet3d_mlx as example

    model = example.UNet3D(width=4, groups=2)
    x, y = example.synthetic_batch(batch=1, size=8)
    step = nn.value_and_grad(model, example.loss_fn)
    loss, grads = step(model, x, y)
    c_loss, c_grads = mx.compile(lambda x, y: step(model, x, y), inputs=model.state)(x, y)
    assert abs(c_loss.item() - loss.item()) <= 1e-6 * loss.item()
    from mlx.utils import tree_flatten

    for (k, g), (_, c) in zip(tree_flatten(grads), tree_flatten(c_grads)):
        assert_close(c, g, 1e-5, k)


def test_primitive_keeps_float64_and_refuses_bad_shapes(on):
    x, w = rand(1, 4, 4, 4, 2, dtype=mx.float64), rand(2, 3, 3, 3, 2, dtype=mx.float64)
    gx, gw = mx.grad(lambda x, w: (vcm.conv3d(x, w, padding=1) ** 2).sum(), argnums=(0, 1))(x, w)
    assert (vcm.conv3d(x, w).dtype, gx.dtype, gw.dtype) == (mx.float64,) * 3
    with pytest.raises(ValueError, match=r"\[conv3d\]"):
        vcm.conv3d(x, rand(2, 3, 3, 3, 3))


def test_the_primitive_follows_volconvs_thread_count(on, native):
    import volconv as vc

    before = vc.get_num_threads()
    try:
        vc.set_num_threads(1)
        vcm.conv3d(rand(1, 3, 3, 3, 1), rand(1, 1, 1, 1, 1))
        assert native.get_num_threads() == 1
    finally:
        vc.set_num_threads(before)
        vcm.conv3d(rand(1, 3, 3, 3, 1), rand(1, 1, 1, 1, 1))
    assert native.get_num_threads() == vc.get_num_threads()


def test_a_second_order_gradient_raises(on):
    x, w = rand(1, 4, 4, 4, 2), rand(2, 3, 3, 3, 2)
    inner = mx.grad(lambda w: (vcm.conv3d(x, w, padding=1) ** 2).sum())
    with pytest.raises(RuntimeError, match=r"differentiable once"):
        mx.eval(mx.grad(lambda w: inner(w).sum())(w))


def test_a_module_for_another_mlx_version_is_not_used(native, monkeypatch):
    built = _native.cache_dir() / os.path.basename(native.__file__)
    monkeypatch.setattr(mx, "__version__", "0.0.0")  # another mlx: another folder, nothing in it
    _native.primitive.cache_clear()
    try:
        assert _native.primitive() is None and vcm.route() == "python"
        # A module copied into that folder still records the mlx it was built against.
        _native.cache_dir().mkdir(parents=True)
        shutil.copy(built, _native.cache_dir())
        _native.primitive.cache_clear()
        assert _native.primitive() is None
    finally:
        _native.primitive.cache_clear()


def test_an_extension_mlx_arrays_cannot_enter_is_not_used():
    class OtherNanobindABI:  # what a module built with another nanobind ABI does with mlx arrays
        mlx_version = mx.__version__

        @staticmethod
        def conv3d(*args):
            raise TypeError("conv3d(): incompatible function arguments.")

    assert not _native._passes_arrays(OtherNanobindABI())
