"""volconv.mlx's differentiable ops against MLX's own autodiff: gradients
with respect to every array argument match mx.grad of mx.conv3d /
mx.conv_transpose3d / mx.conv_general (groups=1), of the same op split by
groups and concatenated (groups > 1, which MLX refuses in 3-D), of MLX
compositions of the epilogue, and of torch for the padding modes. float64
is checked against central finite differences of the float64 forward."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")

import volconv as vc  # noqa: E402
import volconv.mlx as vcm  # noqa: E402

RNG = np.random.default_rng(18)


@pytest.fixture(autouse=True)
def python_route(monkeypatch):
    """These tests check the Python route (mx.custom_function), whatever this
    machine has built (tests/test_mlx_primitive.py checks the C++ route)."""
    monkeypatch.setattr("volconv.mlx._ops.primitive", lambda: None)


def rand(*shape, dtype=mx.float32):
    return mx.array(RNG.standard_normal(shape).astype(np.float32)).astype(dtype)


def assert_close(a, b, tol, what=""):
    a, b = np.asarray(a.astype(mx.float64) if a.dtype != mx.float64 else a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(np.abs(b).max(), 1e-30)
    err = np.abs(a - b).max() / scale
    assert err <= tol, f"{what}: max error {err:.3g} relative to max |ref| {scale:.3g} > {tol}"


def grads_of(fn, arrays, cot):
    """Gradients of sum(fn(*arrays) * cot) with respect to every array."""
    loss = lambda *a: (fn(*a) * cot).sum()
    return mx.grad(loss, argnums=tuple(range(len(arrays))))(*arrays)


def split_groups(op, groups):
    """MLX's `op` with groups, as MLX lacks them in 3-D: one call per group, concatenated."""

    def grouped(x, w, *args):
        cig, cog = x.shape[-1] // groups, w.shape[0] // groups
        parts = [
            op(x[..., g * cig : (g + 1) * cig], w[g * cog : (g + 1) * cog], *args) for g in range(groups)
        ]
        return mx.concatenate(parts, axis=-1)

    return grouped


def check_against(ours, reference, x, w, tol=2e-5):
    y_ref = reference(x, w)
    y = ours(x, w)
    assert y.dtype == x.dtype
    assert_close(y, y_ref, tol, "forward")
    cot = rand(*y_ref.shape)
    got = grads_of(ours, (x, w), cot)
    want = grads_of(reference, (x, w), cot)
    assert_close(got[0], want[0], tol, "d input")
    assert_close(got[1], want[1], tol, "d weight")


CONV3D = [
    # (N, D, H, W, C_in), (C_out, k..., C_in/g), stride, padding, dilation, groups
    ((2, 6, 7, 5, 4), (6, 3, 3, 3, 4), 1, 1, 1, 1),
    ((1, 9, 8, 7, 3), (5, 3, 2, 3, 3), (2, 1, 3), (1, 0, 2), (1, 2, 1), 1),
    ((1, 7, 7, 7, 8), (8, 3, 3, 3, 2), 2, 1, 1, 4),
    ((2, 5, 6, 5, 6), (6, 3, 3, 3, 1), 1, (0, 1, 1), 2, 6),  # depthwise
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV3D)
def test_conv3d_gradients_match_mlx(xs, ws, stride, padding, dilation, groups):
    x, w = rand(*xs), rand(*ws)
    ref = split_groups(lambda a, b: mx.conv3d(a, b, stride, padding, dilation), groups)
    check_against(lambda a, b: vcm.conv3d(a, b, stride, padding, dilation, groups), ref, x, w)


CONV_TRANSPOSE = [
    # input, weight, stride, padding, dilation, output_padding, groups
    ((1, 4, 5, 3, 6), (4, 2, 2, 2, 6), 2, 0, 1, 0, 1),
    ((2, 3, 4, 5, 4), (3, 3, 3, 3, 4), (2, 1, 2), 1, 1, (1, 0, 0), 1),
    # (MLX's own vjp fails on output_padding along a dilated axis: kept apart here)
    ((1, 4, 3, 4, 6), (9, 3, 2, 3, 2), 2, (1, 0, 1), (1, 2, 1), (1, 0, 1), 3),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, output_padding, groups", CONV_TRANSPOSE)
def test_conv_transpose3d_gradients_match_mlx(xs, ws, stride, padding, dilation, output_padding, groups):
    x, w = rand(*xs), rand(*ws)
    ref = split_groups(
        lambda a, b: mx.conv_transpose3d(a, b, stride, padding, dilation, output_padding), groups
    )
    ours = lambda a, b: vcm.conv_transpose3d(a, b, stride, padding, dilation, output_padding, groups)
    check_against(ours, ref, x, w)


CONV_GENERAL = [
    # input, weight, stride, padding (lo, hi), kernel_dilation, input_dilation, groups, flip
    ((1, 5, 6, 4, 3), (4, 3, 3, 2, 3), 1, ((1, 0, 1), (1, 2, 0)), 1, 1, 1, False),
    ((1, 4, 5, 4, 2), (3, 3, 2, 3, 2), (2, 3, 1), ((2, 1, 0), (1, 0, 2)), 1, (2, 1, 3), 1, True),
    # padding beyond the dilated kernel: the gradient's padding goes negative
    ((1, 6, 5, 7, 2), (2, 2, 3, 2, 2), (3, 2, 2), ((4, 3, 2), (5, 1, 3)), (2, 1, 2), 1, 1, False),
    ((1, 4, 5, 4, 4), (6, 3, 3, 3, 2), 2, ((1, 2, 1), (0, 1, 2)), (1, 2, 1), 2, 2, True),
    ((2, 3, 4, 3, 3), (3, 2, 3, 2, 1), (2, 1, 3), ((3, 0, 4), (0, 4, 1)), (2, 1, 1), (3, 2, 1), 3, False),
]


def _t3(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


@pytest.mark.parametrize("xs, ws, stride, padding, kdil, idil, groups, flip", CONV_GENERAL)
def test_conv_general_gradients_satisfy_the_adjoint_identity(
    xs, ws, stride, padding, kdil, idil, groups, flip
):
    """The op is linear in each argument, so its gradients are fixed by
    <dx, v> = <conv(v, w), cot> and <dw, u> = <conv(x, u), cot> for any v, u;
    conv is the float64 numpy reference. (MLX's own conv_general vjp fails on
    several of these geometries, so it cannot be the reference here.)"""
    from reference_training import conv_general_reference

    x, w = rand(*xs), rand(*ws)
    geometry = dict(
        stride=_t3(stride),
        pad_lo=padding[0],
        pad_hi=padding[1],
        kernel_dilation=_t3(kdil),
        input_dilation=_t3(idil),
        groups=groups,
        flip=flip,
    )
    ref = lambda a, b: conv_general_reference(np.asarray(a), np.asarray(b), **geometry)
    y = vcm.conv_general(x, w, stride, padding, kdil, idil, groups, flip)
    assert_close(y, ref(x, w), 2e-5, "forward")
    cot = rand(*y.shape)
    dx, dw = grads_of(
        lambda a, b: vcm.conv_general(a, b, stride, padding, kdil, idil, groups, flip), (x, w), cot
    )
    c = np.asarray(cot, dtype=np.float64)
    for g, probe, what in ((dx, lambda v: ref(v, w), "d input"), (dw, lambda u: ref(x, u), "d weight")):
        for _ in range(2):
            v = RNG.standard_normal(g.shape)
            got = float((np.asarray(g, dtype=np.float64) * v).sum())
            want = float((probe(v) * c).sum())
            assert abs(got - want) <= 1e-5 * (np.abs(np.asarray(g)).sum() * np.abs(v).max()), (
                what,
                got,
                want,
            )


def _mlx_epilogue(y, b, activation, r):
    if b is not None:
        y = y + b
    if activation == "relu":
        y = mlx_nn.relu(y)
    elif activation == "silu":
        y = mlx_nn.silu(y)
    elif activation == "gelu_tanh":
        y = mlx_nn.gelu_approx(y)
    return y if r is None else y + r


def epilogue_operands(x, w, y_shape, has_bias, has_residual):
    """[x, w, bias?, residual?] (random, in x's dtype) and the function that
    splits such a list back into (x, w, bias or None, residual or None)."""
    b = rand(w.shape[0], dtype=x.dtype) if has_bias else None
    r = rand(*y_shape, dtype=x.dtype) if has_residual else None
    arrays = [a for a in (x, w, b, r) if a is not None]

    def unpack(a):
        a = list(a)
        return a[0], a[1], a.pop(2) if has_bias else None, a[-1] if has_residual else None

    return arrays, unpack


EPILOGUES = [
    (True, "relu", False),
    (True, "relu", True),
    (False, "silu", True),
    (True, "gelu_tanh", False),
    (True, None, True),
]


@pytest.mark.parametrize("op", ["conv3d", "conv_transpose3d"])
@pytest.mark.parametrize("has_bias, activation, has_residual", EPILOGUES)
def test_epilogue_gradients_match_mlx(op, has_bias, activation, has_residual):
    x, w = rand(1, 5, 6, 4, 3), rand(4, 3, 3, 3, 3)
    kw = dict(stride=2, padding=1)
    base = getattr(mx, op)
    y_shape = base(x, w, **kw).shape
    arrays, unpack = epilogue_operands(x, w, y_shape, has_bias, has_residual)

    def ours(*a):
        x, w, b, r = unpack(a)
        return getattr(vcm, op)(x, w, **kw, bias=b, activation=activation, residual=r)

    def reference(*a):
        x, w, b, r = unpack(a)
        return _mlx_epilogue(base(x, w, **kw), b, activation, r)

    assert_close(ours(*arrays), reference(*arrays), 2e-5, "forward")
    cot = rand(*y_shape)
    got, want = grads_of(ours, arrays, cot), grads_of(reference, arrays, cot)
    for name, g, r in zip(("input", "weight", "bias" if has_bias else "residual", "residual"), got, want):
        assert g.dtype == r.dtype
        assert_close(g, r, 3e-5, f"d {name}")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch(mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w = rand(2, 5, 4, 6, 3), rand(6, 3, 2, 3, 1)
    padding, groups = ((2, 1, 2), (1, 3, 1)), 3  # H: 4, padded 3 high (reflect's largest)
    y = vcm.conv3d(x, w, 1, padding, 1, groups, padding_mode=mode)
    cot = rand(*y.shape)
    got = grads_of(lambda a, b: vcm.conv3d(a, b, 1, padding, 1, groups, padding_mode=mode), (x, w), cot)

    xt = torch.tensor(np.asarray(x), dtype=torch.float64).permute(0, 4, 1, 2, 3).requires_grad_()
    wt = torch.tensor(np.asarray(w), dtype=torch.float64).permute(0, 4, 1, 2, 3).requires_grad_()
    (lo, hi) = padding
    pads = (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])  # F.pad: last dim first
    yt = F.conv3d(F.pad(xt, pads, mode=mode), wt, groups=groups)
    yt.backward(torch.tensor(np.asarray(cot), dtype=torch.float64).permute(0, 4, 1, 2, 3))
    to_ndhwc = lambda t: t.detach().permute(0, 2, 3, 4, 1).numpy()
    assert_close(y, to_ndhwc(yt), 2e-6, "forward")
    assert_close(got[0], to_ndhwc(xt.grad), 2e-6, "d input")
    assert_close(got[1], to_ndhwc(wt.grad), 2e-6, "d weight")


def _directional_check(f, arrays, seed):
    """<grad f, v> against (f(a + h v) - f(a - h v)) / 2h for a random v, all float64."""
    rng = np.random.default_rng(seed)
    vs = [mx.array(rng.standard_normal(a.shape)) for a in arrays]
    grads = mx.grad(f, argnums=tuple(range(len(arrays))))(*arrays)
    for g, a in zip(grads, arrays):
        assert g.dtype == mx.float64 and g.shape == a.shape
    h = 1e-6
    plus = f(*[a + h * v for a, v in zip(arrays, vs)]).item()
    minus = f(*[a - h * v for a, v in zip(arrays, vs)]).item()
    fd = (plus - minus) / (2 * h)
    analytic = sum((g * v).sum().item() for g, v in zip(grads, vs))
    assert abs(analytic - fd) <= 1e-6 * max(1.0, abs(fd)), (analytic, fd)


def test_float64_stays_float64_and_matches_finite_differences():
    d = mx.float64
    x, w, b = rand(1, 5, 4, 5, 4, dtype=d), rand(6, 3, 3, 3, 2, dtype=d), rand(6, dtype=d)
    r = rand(1, 3, 2, 3, 6, dtype=d)
    conv = lambda x, w, b, r: vcm.conv3d(x, w, 2, 1, 1, 2, bias=b, activation="gelu_tanh", residual=r)
    assert conv(x, w, b, r).dtype == d
    _directional_check(lambda *a: (conv(*a) ** 2).sum(), (x, w, b, r), 1)
    up = lambda x, w: vcm.conv_transpose3d(x, w, 2, 1, 1, 1, 2, activation="silu")
    _directional_check(lambda *a: (up(*a) ** 2).sum(), (x, w), 2)
    gen = lambda x, w: vcm.conv_general(x, w, 2, ((2, 0, 1), (1, 3, 0)), 2, (1, 2, 1), 2, True)
    _directional_check(lambda *a: (gen(*a) ** 2).sum(), (x, w), 3)


def test_every_mlx_transform_gives_the_same_gradient():
    x, w = rand(1, 5, 5, 5, 4), rand(4, 3, 3, 3, 2)
    loss = lambda w, x: (vcm.conv3d(x, w, 1, 1, 1, 2, activation="silu") ** 2).sum()
    ref = lambda w, x: (mlx_nn.silu(split_groups(lambda a, b: mx.conv3d(a, b, 1, 1), 2)(x, w)) ** 2).sum()
    want = mx.grad(ref)(w, x)
    assert_close(mx.grad(loss)(w, x), want, 3e-5, "mx.grad")
    value, g = mx.value_and_grad(loss)(w, x)
    assert_close(value, ref(w, x), 1e-5, "mx.value_and_grad value")
    assert_close(g, want, 3e-5, "mx.value_and_grad")
    (out,), (g,) = mx.vjp(lambda w: loss(w, x), [w], [mx.array(1.0)])
    assert_close(g, want, 3e-5, "mx.vjp")

    class Layer(mlx_nn.Module):
        def __init__(self):
            super().__init__()
            self.w = w

        def __call__(self, x):
            return vcm.conv3d(x, self.w, 1, 1, 1, 2, activation="silu")

    model = Layer()
    _, g = mlx_nn.value_and_grad(model, lambda m, x: (m(x) ** 2).sum())(model, x)
    assert_close(g["w"], want, 3e-5, "nn.value_and_grad")


def test_mx_compile_raises_a_clear_error():
    x, w = rand(1, 4, 4, 4, 2), rand(2, 3, 3, 3, 2)
    for fn in (
        lambda x, w: vcm.conv3d(x, w, padding=1),
        mx.grad(lambda x, w: vcm.conv3d(x, w, padding=1).sum(), argnums=1),
        lambda x, w: vcm.conv_transpose3d(x, w),
        lambda x, w: vcm.conv_general(x, w),
    ):
        with pytest.raises(ValueError, match=r"cannot run inside mx.compile"):
            mx.eval(mx.compile(fn)(x, w))


def test_plain_volconv_warns_when_a_gradient_reaches_it():
    x, w = rand(1, 4, 4, 4, 2), rand(2, 3, 3, 3, 2)
    with pytest.warns(UserWarning, match=r"volconv.mlx.conv3d"):
        g = mx.grad(lambda w: vc.conv3d(x, w, padding=1).sum())(w)
    assert not np.asarray(g).any()  # still zero: the warning is the point
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = vc.conv3d(x, w, padding=1)  # no transform: no warning, the same values
        assert_close(y, mx.conv3d(x, w, padding=1), 2e-5, "plain forward")
        # the differentiable op: silent
        mx.grad(lambda w: vcm.conv3d(x, w, padding=1, activation="silu").sum())(w)


def test_a_second_order_gradient_warns():
    x, w = rand(1, 4, 4, 4, 2), rand(2, 3, 3, 3, 2)
    for op in (vcm.conv3d, vcm.conv_transpose3d, vcm.conv_general):
        inner = mx.grad(lambda w, op=op: (op(x, w) ** 2).sum())
        with pytest.warns(UserWarning, match=r"second-order gradient reached volconv.mlx." + op.__name__):
            mx.grad(lambda w, inner=inner: inner(w).sum())(w)


def test_bad_arguments_name_the_op():
    x, w = rand(1, 4, 4, 4, 2), rand(2, 3, 3, 3, 2)
    with pytest.raises(TypeError, match=r"\[conv3d\] Expected the input to be an mlx.core.array"):
        vcm.conv3d(np.asarray(x), w)
    with pytest.raises(ValueError, match=r"\[conv_transpose3d\] Expected the weight to have 5 dimensions"):
        vcm.conv_transpose3d(x, w[0])
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected activation"):
        vcm.conv3d(x, w, activation="tanh")
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected padding_mode"):
        vcm.conv3d(x, w, padding_mode="mirror")
    with pytest.raises(
        ValueError, match=r"\[conv3d\] Padding mode 'reflect' needs padding smaller than the input size"
    ):
        vcm.conv3d(x, w, padding=4, padding_mode="reflect")
    with pytest.raises(
        ValueError, match=r"\[conv_general\] Expected the residual to have the output's shape"
    ):
        vcm.conv_general(x, w, residual=rand(1, 2, 2, 2, 1))


def test_gradients_come_in_each_arguments_dtype():
    x, w = rand(1, 4, 4, 4, 2, dtype=mx.float16), rand(2, 3, 3, 3, 2)
    b, r = rand(2, dtype=mx.bfloat16), rand(1, 4, 4, 4, 2)
    fn = lambda x, w, b, r: vcm.conv3d(x, w, padding=1, bias=b, activation="silu", residual=r).sum()
    grads = mx.grad(fn, argnums=(0, 1, 2, 3))(x, w, b, r)
    assert [g.dtype for g in grads] == [mx.float16, mx.float32, mx.bfloat16, mx.float32]
    want = mx.grad(lambda x: fn(x.astype(mx.float32), w, b, r))(x.astype(mx.float32))
    assert_close(grads[0], want, 2e-3, "float16 d input")
