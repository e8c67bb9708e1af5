"""conv_transpose3d, conv_general and conv3d's gradients against the
independent float64 references (reference_training.py), the adjoint
identities, PyTorch and MLX; thread-count determinism of the weight
gradient; bad arguments."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from reference_training import (
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_general_reference,
    conv_transpose3d_reference,
)
from training_checks import (
    assert_adjoint,
    assert_grads_close_to_torch,
    check_conv3d_grads,
    check_conv_transpose3d,
    data,
    dot,
    f64,
    torch_conv3d_grads,
)

import volconv as vc
from volconv import _training

from conftest import FLOAT_DTYPES, cpu_problem_plan


def t3(v):
    return (v, v, v) if isinstance(v, int) else tuple(v)


class Case(NamedTuple):
    name: str
    n: int
    size: tuple
    cin: int
    cout: int
    kernel: tuple
    stride: tuple = (1, 1, 1)
    pad_lo: tuple = (0, 0, 0)
    pad_hi: tuple = (0, 0, 0)
    dilation: tuple = (1, 1, 1)
    groups: int = 1
    output_padding: tuple = (0, 0, 0)  # transposed cases only

    def weight_shape(self):
        return (self.cout, *self.kernel, self.cin // self.groups)

    def padding(self):
        return (self.pad_lo, self.pad_hi)

    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding(), dilation=self.dilation, groups=self.groups)

    def ref_kwargs(self):
        return dict(
            stride=self.stride,
            pad_lo=self.pad_lo,
            pad_hi=self.pad_hi,
            dilation=self.dilation,
            groups=self.groups,
        )


def C(name, n, size, cin, cout, k, s=1, lo=0, hi=None, d=1, g=1, op=0):
    return Case(
        name, n, t3(size), cin, cout, t3(k), t3(s), t3(lo), t3(lo if hi is None else hi), t3(d), g, t3(op)
    )


# Forward-conv geometries for the gradients: strides 1-3, dilation,
# asymmetric padding, groups, depthwise, C 1 / 3 / 17, N > 1.
GRAD_CASES = [
    C("k3p1", 2, (5, 6, 4), 3, 17, 3, lo=1),
    C("s2", 1, (7, 6, 5), 17, 3, 3, s=2, lo=1),
    C("s3_asym", 2, (8, 7, 9), 3, 3, (2, 3, 2), s=(3, 2, 3), lo=(0, 1, 2), hi=(2, 0, 1)),
    C("dil2", 1, (7, 8, 6), 4, 6, 3, d=(2, 1, 2), lo=2),
    C("cin1", 2, (5, 5, 5), 1, 3, 3, s=2, lo=1),
    C("cout1", 1, (6, 5, 4), 17, 1, 2, s=(1, 2, 1)),
    C("groups", 2, (5, 6, 5), 6, 9, 3, s=2, lo=1, g=3),
    C("depthwise", 1, (6, 5, 7), 8, 8, 3, s=(2, 1, 2), lo=(1, 0, 1), hi=(0, 1, 1), g=8),
    C("pointwise_s2", 2, (5, 4, 6), 17, 17, 1, s=2),
]

# Transposed geometries: output_padding (also >= stride when dilation is
# larger, as PyTorch allows), padding beyond dilation*(K-1) (crops), groups.
TRANSPOSE_CASES = [
    C("k2s2", 2, (3, 4, 3), 17, 3, 2, s=2),
    C("k3s2p1op1", 1, (4, 3, 5), 3, 17, 3, s=2, lo=1, op=1),
    C("k3s3_asym", 2, (3, 4, 2), 3, 3, (3, 2, 3), s=(3, 2, 1), lo=(0, 1, 2), hi=(2, 0, 1), op=(2, 1, 0)),
    C("dil2_op", 1, (3, 4, 3), 4, 6, 3, s=(1, 2, 1), d=(3, 2, 2), lo=(1, 2, 0), op=(2, 1, 1)),
    C("crop", 1, (4, 5, 4), 3, 2, 2, s=2, lo=(3, 2, 1), hi=(1, 3, 2)),
    C("groups", 2, (3, 3, 4), 6, 9, 3, s=2, lo=1, g=3, op=1),
    C("depthwise", 1, (4, 3, 4), 8, 8, 3, s=2, lo=1, g=8, op=(1, 0, 1)),
    C("cin1_s1", 2, (4, 4, 3), 1, 3, 3, lo=1),
]

# conv_general: (stride, padding lo, hi, kernel dilation, input dilation, groups, flip)
GENERAL_CASES = [
    ((1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), (2, 2, 2), 1, True),
    ((2, 1, 3), (1, 0, 2), (0, 2, 1), (1, 2, 1), (3, 1, 2), 1, False),
    ((2, 2, 2), (2, 2, 2), (1, 1, 1), (2, 1, 1), (2, 2, 3), 3, True),
    ((3, 1, 2), (0, 1, 0), (1, 0, 0), (1, 1, 2), (2, 3, 2), 3, False),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.name)
def test_conv3d_grads_match_reference(case, dtype):
    x = data((case.n, *case.size, case.cin), 1, dtype)
    w = data(case.weight_shape(), 2, dtype)
    out_shape = vc.conv3d(x, w, **case.kwargs()).shape
    gy = data(out_shape, 3, dtype)
    check_conv3d_grads(case, x, w, gy, dtype, "")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: c.name)
def test_conv_transpose3d_matches_reference(case, dtype):
    x = data((case.n, *case.size, case.cin), 4, dtype)
    w = data(case.weight_shape(), 5, dtype)
    check_conv_transpose3d(case, x, w, dtype, "conv_transpose3d")


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: "-".join(map(str, c[0] + c[4] + (c[6],))))
def test_conv_general_matches_reference(case, dtype):
    stride, lo, hi, kdil, idil, groups, flip = case
    x = data((2, 4, 3, 5, 6), 6, dtype)
    w = data((9, 3, 2, 3, 6 // groups), 7, dtype)
    kw = dict(stride=stride, kernel_dilation=kdil, input_dilation=idil, groups=groups, flip=flip)
    y = vc.conv_general(x, w, padding=(lo, hi), **kw)
    ref = conv_general_reference(f64(x), f64(w), pad_lo=lo, pad_hi=hi, **kw)
    scale = conv_general_reference(np.abs(f64(x)), np.abs(f64(w)), pad_lo=lo, pad_hi=hi, **kw)
    assert_close(y, ref, scale, dtype, "conv_general")


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.name)
def test_conv3d_adjoint_identity(case):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((case.n, *case.size, case.cin))
    w = rng.standard_normal(case.weight_shape())
    y = vc.conv3d(x, w, **case.kwargs())
    g = rng.standard_normal(y.shape)
    gx = vc.conv3d_grad_input(g, w, x.shape, **case.kwargs())
    gw = vc.conv3d_grad_weight(x, g, w.shape, **case.kwargs())
    assert_adjoint(y, x, w, g, gx, gw)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: c.name)
def test_conv_transpose3d_adjoint_identity(case):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((case.n, *case.size, case.cin))
    w = rng.standard_normal(case.weight_shape())
    kw = dict(case.kwargs(), output_padding=case.output_padding)
    y = vc.conv_transpose3d(x, w, **kw)
    g = rng.standard_normal(y.shape)
    gx = _training._conv_transpose3d_grad_input(g, w, x.shape, **kw)
    gw = _training._conv_transpose3d_grad_weight(x, g, w.shape, **kw)
    assert_adjoint(y, x, w, g, gx, gw)


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: "-".join(map(str, c[0] + c[4] + (c[6],))))
def test_conv_general_weight_grad_adjoint(case):
    stride, lo, hi, kdil, idil, groups, flip = case
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 4, 3, 5, 6))
    w = rng.standard_normal((9, 3, 2, 3, 6 // groups))
    kw = dict(
        stride=stride, padding=(lo, hi), kernel_dilation=kdil, input_dilation=idil, groups=groups, flip=flip
    )
    y = vc.conv_general(x, w, **kw)
    g = rng.standard_normal(y.shape)
    gw = _training._conv_general_grad_weight(x, g, w.shape, **kw)
    lhs = dot(y, g)
    assert abs(lhs - dot(w, gw)) <= 1e-11 * (float(np.sum(np.abs(y) * np.abs(g))) + 1.0)


def _torch_transpose_weight(w, groups):
    """volconv's (C_out, K..., C_in/g) -> torch's (C_in, C_out/g, K...):
    torch_w[g*Cin_g + c, o] = w[g*Cout_g + o, ..., c]."""
    c_out, *k, cig = w.shape
    cog = c_out // groups
    return np.ascontiguousarray(
        w.reshape(groups, cog, *k, cig).transpose(0, 5, 1, 2, 3, 4).reshape(groups * cig, cog, *k)
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.name)
def test_conv3d_grads_match_torch_autograd(case, dtype):
    torch = pytest.importorskip("torch")
    x = data((case.n, *case.size, case.cin), 11, dtype)
    w = data(case.weight_shape(), 12, dtype)
    gy_nd, torch_gx, torch_gw = torch_conv3d_grads(torch, x, w, case, case.groups, 13, dtype)
    gx = vc.conv3d_grad_input(torch.from_numpy(gy_nd), torch.from_numpy(w), x.shape, **case.kwargs())
    gw = vc.conv3d_grad_weight(x, gy_nd, w.shape, **case.kwargs())
    assert isinstance(gx, torch.Tensor)  # the kind of the first array argument
    assert_grads_close_to_torch(case, x, w, gy_nd, gx.numpy(), gw, torch_gx, torch_gw, dtype)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: c.name)
def test_conv_transpose3d_matches_torch_autograd(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    if case.pad_lo != case.pad_hi:
        pytest.skip("F.conv_transpose3d takes symmetric padding only")
    x = data((case.n, *case.size, case.cin), 14, "float64")
    w = data(case.weight_shape(), 15, "float64")
    xt = torch.from_numpy(x).permute(0, 4, 1, 2, 3).requires_grad_()
    wt = torch.from_numpy(_torch_transpose_weight(w, case.groups)).requires_grad_()
    y = F.conv_transpose3d(
        xt,
        wt,
        stride=case.stride,
        padding=case.pad_lo,
        output_padding=case.output_padding,
        groups=case.groups,
        dilation=case.dilation,
    )
    gy = torch.from_numpy(data(tuple(y.shape), 16, "float64"))
    y.backward(gy)
    kw = dict(case.kwargs(), output_padding=case.output_padding)
    ours = vc.conv_transpose3d(torch.from_numpy(x), torch.from_numpy(w), **kw)
    np.testing.assert_allclose(
        ours.numpy(), y.detach().permute(0, 2, 3, 4, 1).numpy(), rtol=1e-10, atol=1e-10
    )
    gy_nd = np.ascontiguousarray(gy.permute(0, 2, 3, 4, 1).numpy())
    gx = _training._conv_transpose3d_grad_input(gy_nd, w, x.shape, **kw)
    np.testing.assert_allclose(gx, xt.grad.permute(0, 2, 3, 4, 1).numpy(), rtol=1e-10, atol=1e-10)
    gw = _training._conv_transpose3d_grad_weight(x, gy_nd, w.shape, **kw)
    np.testing.assert_allclose(
        _torch_transpose_weight(gw, case.groups), wt.grad.numpy(), rtol=1e-10, atol=1e-10
    )


@pytest.mark.parametrize(
    "case", [c for c in GRAD_CASES if c.groups == 1 and c.pad_lo == c.pad_hi], ids=lambda c: c.name
)
def test_conv3d_grads_match_mlx_vjp(case):
    mx = pytest.importorskip("mlx.core")
    x = data((case.n, *case.size, case.cin), 17, "float32")
    w = data(case.weight_shape(), 18, "float32")
    kw = dict(stride=case.stride, padding=case.pad_lo, dilation=case.dilation)
    y = mx.conv3d(mx.array(x), mx.array(w), **kw)
    gy = data(y.shape, 19, "float32")
    _, (gx, gw) = mx.vjp(lambda a, b: mx.conv3d(a, b, **kw), [mx.array(x), mx.array(w)], [mx.array(gy)])
    ours_x = vc.conv3d_grad_input(mx.array(gy), mx.array(w), x.shape, **kw)
    ours_w = vc.conv3d_grad_weight(mx.array(x), mx.array(gy), w.shape, **kw)
    assert isinstance(ours_x, mx.array)
    rk = case.ref_kwargs()
    scale = conv3d_grad_input_reference(np.abs(f64(gy)), np.abs(f64(w)), x.shape, **rk)
    assert_close(np.array(ours_x), f64(np.array(gx)), 2 * scale, "float32", "grad_input vs mlx")
    scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy)), w.shape, **rk)
    assert_close(np.array(ours_w), f64(np.array(gw)), 2 * scale, "float32", "grad_weight vs mlx")


# MLX agrees with PyTorch where padding <= dilation * (K - 1) and symmetric.
MLX_TRANSPOSE = [
    c
    for c in TRANSPOSE_CASES
    if c.groups == 1
    and c.pad_lo == c.pad_hi
    and all(p <= d * (k - 1) for p, d, k in zip(c.pad_lo, c.dilation, c.kernel))
]


@pytest.mark.parametrize("case", MLX_TRANSPOSE, ids=lambda c: c.name)
def test_conv_transpose3d_matches_mlx(case):
    mx = pytest.importorskip("mlx.core")
    x = data((case.n, *case.size, case.cin), 20, "float32")
    w = data(case.weight_shape(), 21, "float32")
    kw = dict(
        stride=case.stride, padding=case.pad_lo, dilation=case.dilation, output_padding=case.output_padding
    )
    y = mx.conv_transpose3d(mx.array(x), mx.array(w), **kw)
    ours = vc.conv_transpose3d(mx.array(x), mx.array(w), **kw)
    assert isinstance(ours, mx.array) and ours.shape == y.shape
    gy = data(y.shape, 22, "float32")
    _, (gx, gw) = mx.vjp(
        lambda a, b: mx.conv_transpose3d(a, b, **kw), [mx.array(x), mx.array(w)], [mx.array(gy)]
    )
    rk = dict(case.ref_kwargs(), output_padding=case.output_padding)
    scale = conv_transpose3d_reference(np.abs(f64(x)), np.abs(f64(w)), **rk)
    assert_close(np.array(ours), f64(np.array(y)), 2 * scale, "float32", "conv_transpose3d vs mlx")
    ours_gx = _training._conv_transpose3d_grad_input(gy, w, x.shape, **kw)
    ours_gw = _training._conv_transpose3d_grad_weight(x, gy, w.shape, **kw)
    for ours_g, theirs, what in ((ours_gx, gx, "grad_input"), (ours_gw, gw, "grad_weight")):
        err = np.abs(f64(ours_g) - f64(np.array(theirs)))
        assert err.max() <= 1e-4 * (np.abs(f64(ours_g)).max() + 1), what


@pytest.mark.parametrize("case", [GRAD_CASES[0], GRAD_CASES[6], GRAD_CASES[7]], ids=lambda c: c.name)
def test_grad_weight_bits_independent_of_threads(case):
    x = data((case.n, *case.size, case.cin), 23, "float32")
    out_shape = vc.conv3d(x, data(case.weight_shape(), 24, "float32"), **case.kwargs()).shape
    gy = data(out_shape, 25, "float32")
    t = data((1, 5, 5, 5, 6), 26, "float32")
    tw = data((4, 2, 2, 2, 6), 27, "float32")
    before = vc.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            vc.set_num_threads(n)
            results.append(
                (
                    vc.conv3d_grad_weight(x, gy, case.weight_shape(), **case.kwargs()),
                    _training._conv_transpose3d_grad_weight(
                        t, vc.conv_transpose3d(t, tw, stride=2), tw.shape, stride=2
                    ),
                )
            )
    finally:
        vc.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            assert a.tobytes() == b.tobytes()


def test_output_kinds_and_dtypes():
    torch = pytest.importorskip("torch")
    x = data((1, 3, 3, 3, 2), 28, "float16")
    w = data((2, 2, 2, 2, 2), 29, "float32")
    y = vc.conv_transpose3d(torch.from_numpy(x), w, stride=2)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and tuple(y.shape) == (1, 6, 6, 6, 2)
    gy = data((1, 2, 2, 2, 2), 30, "bfloat16")
    gw = vc.conv3d_grad_weight(x, gy, (2, 2, 2, 2, 2))  # float16 with bfloat16 promotes to float32
    assert gw.dtype == np.float32


BAD = [
    (
        lambda: vc.conv_transpose3d(
            np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), stride=2, output_padding=2
        ),
        r"\[conv_transpose3d\] Output padding must be smaller than either stride or dilation",
    ),
    (
        lambda: vc.conv_transpose3d(np.zeros((1, 3, 3, 3, 4)), np.zeros((3, 3, 3, 3, 2)), groups=2),
        r"\[conv_transpose3d\] The number of groups must divide both",
    ),
    (
        lambda: vc.conv_transpose3d(np.zeros((1, 1, 1, 1, 2)), np.zeros((2, 1, 1, 1, 2)), padding=1),
        r"\[conv_transpose3d\] The padding crops the whole output",
    ),
    (
        lambda: vc.conv_transpose3d(np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), padding="same"),
        r"\[conv_transpose3d\] Expected padding to be an int",
    ),
    (
        lambda: vc.conv_transpose3d(np.zeros((1, 3, 3, 3, 2), np.int32), np.zeros((2, 3, 3, 3, 2))),
        r"\[conv_transpose3d\] Expected the input to have a floating-point dtype",
    ),
    (
        lambda: vc.conv_general(np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), padding=-1),
        r"\[conv_general\] Padding sizes must be non-negative",
    ),
    (
        lambda: vc.conv_general(np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), input_dilation=0),
        r"\[conv_general\] Input dilation sizes must be positive",
    ),
    (
        lambda: vc.conv_general(
            np.zeros((1, 2, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), kernel_dilation=(2, 1, 1)
        ),
        r"\[conv_general\] Spatial dimensions of input after dilation and padding cannot be smaller",
    ),
    (
        lambda: vc.conv_general(np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), flip=1),
        r"\[conv_general\] Expected flip to be a bool",
    ),
    (
        lambda: vc.conv3d_grad_input(np.zeros((1, 2, 2, 2, 2)), np.zeros((2, 3, 3, 3, 2)), (1, 5, 5, 5, 2)),
        r"\[conv3d_grad_input\] Expected grad_output of shape \(1,3,3,3,2\)",
    ),
    (
        lambda: vc.conv3d_grad_input(np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), (1, 5, 5, 5)),
        r"\[conv3d_grad_input\] Expected input_shape to be a sequence of 5 ints",
    ),
    # The shape's fast path (plain ints) still checks the int64 range and
    # leaves bools and floats to the full check.
    (
        lambda: vc.conv3d_grad_weight(
            np.zeros((1, 5, 5, 5, 2)), np.zeros((1, 3, 3, 3, 2)), (2, 3, 3, 3, 2**63)
        ),
        r"\[conv3d_grad_weight\] Expected weight_shape to be between",
    ),
    (
        lambda: vc.conv3d_grad_weight(
            np.zeros((1, 5, 5, 5, 2)), np.zeros((1, 3, 3, 3, 2)), (2, 3, 3, 3, -(2**63))
        ),
        r"\[conv3d_grad_weight\] Expected weight_shape to be between",
    ),
    (
        lambda: vc.conv3d_grad_input(
            np.zeros((1, 3, 3, 3, 2)), np.zeros((2, 3, 3, 3, 2)), (1, 5, 5, 5, True)
        ),
        r"\[conv3d_grad_input\] Expected input_shape to be an int but got bool",
    ),
    (
        lambda: vc.conv3d_grad_weight(
            np.zeros((1, 5, 5, 5, 2)), np.zeros((1, 3, 3, 3, 2)), (2, 3, 3, 3, 2), stride=0
        ),
        r"\[conv3d_grad_weight\] Stride sizes must be positive",
    ),
    (
        lambda: vc.conv3d_grad_weight(np.zeros((1, 5, 5, 5, 2)), np.zeros((1, 3, 3, 3)), (2, 3, 3, 3, 2)),
        r"\[conv3d_grad_weight\] Expected the grad_output to have 5 dimensions",
    ),
]


@pytest.mark.parametrize("call,message", BAD, ids=lambda v: v if isinstance(v, str) else "")
def test_bad_arguments(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512f", "avx512bf16"])
def test_grad_weight_on_each_isa(isa):
    from volconv import _core

    if isa not in _core._cpu_supported_isas():
        pytest.skip(f"this CPU has no {isa}")
    case = GRAD_CASES[0]  # C_out 17: full tiles and leftover rows and columns of every tile size
    x = data((case.n, *case.size, case.cin), 31, "float32")
    gy = data(vc.conv3d(x, data(case.weight_shape(), 32, "float32"), **case.kwargs()).shape, 33, "float32")
    x2 = data((1, 5, 4, 6, 17), 34, "float32")  # C_in 17 too
    gy2 = data((1, 3, 2, 4, 16), 35, "float32")
    # C_in 88: on AVX-512 a 64-wide tile, one 16-wide vector, 8 masked columns; on AVX2 also a lone vector
    x3 = data((1, 3, 3, 4, 88), 39, "float32")
    gy3 = data((1, 2, 2, 3, 7), 40, "float32")
    _core._cpu_force_isa(isa)
    try:
        gw = vc.conv3d_grad_weight(x, gy, case.weight_shape(), **case.kwargs())
        gw2 = vc.conv3d_grad_weight(x2, gy2, (16, 3, 3, 3, 17))
        gw3 = vc.conv3d_grad_weight(x3, gy3, (7, 2, 2, 2, 88))
    finally:
        _core._cpu_force_isa("")
    ref = conv3d_grad_weight_reference(f64(x3), f64(gy3), (7, 2, 2, 2, 88))
    scale = conv3d_grad_weight_reference(np.abs(f64(x3)), np.abs(f64(gy3)), (7, 2, 2, 2, 88))
    assert_close(gw3, ref, scale, "float32", f"grad_weight (C_in 88) on {isa}")
    rk = case.ref_kwargs()
    ref = conv3d_grad_weight_reference(f64(x), f64(gy), case.weight_shape(), **rk)
    scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy)), case.weight_shape(), **rk)
    assert_close(gw, ref, scale, "float32", f"grad_weight on {isa}")
    ref = conv3d_grad_weight_reference(f64(x2), f64(gy2), (16, 3, 3, 3, 17))
    scale = conv3d_grad_weight_reference(np.abs(f64(x2)), np.abs(f64(gy2)), (16, 3, 3, 3, 17))
    assert_close(gw2, ref, scale, "float32", f"grad_weight on {isa}")


# (input shape, C_out, keywords, the path the planner must pick): the row
# path's two ways of reading columns and its cuts, and the gathered GEMM.
WGRAD_PATH_CASES = [
    # one group: the padded row read in place, vectors over C_out (17: ends in a
    # masked vector) rather than the 6 columns
    ((2, 3, 4, 21, 2), 17, dict(padding=1), "rows-wgrad"),
    # stride 2 along W, rows longer than a block (cut along W); vectors over the
    # 96 columns, C_out 5 broadcast
    ((1, 2, 3, 300, 32), 5, dict(padding=1, stride=(1, 1, 2), kernel=(1, 2, 3)), "rows-wgrad"),
    # groups and kernel dilation along W: columns built per position, several rows at once
    ((2, 4, 5, 9, 8), 6, dict(padding=2, dilation=(1, 1, 2), groups=2), "rows-wgrad"),
    # built columns, vectors over C_out / groups (10) rather than the 6 columns
    ((1, 3, 4, 11, 4), 20, dict(padding=2, dilation=(1, 1, 2), groups=2), "rows-wgrad"),
    # built columns of rows longer than a block, C_in / groups 32
    ((1, 2, 3, 80, 64), 4, dict(padding=1, groups=2), "rows-wgrad"),
    # C_in / groups above 32: the gathered GEMM, C_in 40 ending in a masked vector
    ((1, 4, 5, 6, 40), 7, dict(padding=1), "gemm-wgrad"),
]


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512f", "avx512bf16"])
def test_grad_weight_paths_on_each_isa(isa):
    """The planner's weight-gradient path for each case, and its result
    against the float64 reference, under every kernel set the CPU runs."""
    from volconv import _core

    if isa not in _core._cpu_supported_isas():
        pytest.skip(f"this CPU has no {isa}")
    for seed, (shape, cout, kwargs, path) in enumerate(WGRAD_PATH_CASES):
        kwargs = dict(kwargs)
        kernel = t3(kwargs.pop("kernel", 3))
        wshape = (cout, *kernel, shape[4] // kwargs.get("groups", 1))
        x = data(shape, 50 + seed, "float32")
        gy = data(vc.conv3d(x, data(wshape, 60 + seed, "float32"), **kwargs).shape, 70 + seed, "float32")
        _core._cpu_force_isa(isa)
        try:
            assert cpu_problem_plan("conv3d_grad_weight", x, gy, wshape, **kwargs)["path"] == path
            gw = vc.conv3d_grad_weight(x, gy, wshape, **kwargs)
        finally:
            _core._cpu_force_isa("")
        p = t3(kwargs.get("padding", 0))
        rk = dict(
            stride=t3(kwargs.get("stride", 1)),
            pad_lo=p,
            pad_hi=p,
            dilation=t3(kwargs.get("dilation", 1)),
            groups=kwargs.get("groups", 1),
        )
        ref = conv3d_grad_weight_reference(f64(x), f64(gy), wshape, **rk)
        scale = conv3d_grad_weight_reference(np.abs(f64(x)), np.abs(f64(gy)), wshape, **rk)
        assert_close(gw, ref, scale, "float32", f"grad_weight {shape} -> {cout} {kwargs} on {isa}")


@pytest.mark.parametrize(
    "case", [c for c in GENERAL_CASES if c[5] == 1], ids=lambda c: "-".join(map(str, c[0] + c[4] + (c[6],)))
)
def test_conv_general_matches_mlx(case):
    mx = pytest.importorskip("mlx.core")
    stride, lo, hi, kdil, idil, groups, flip = case
    x = data((2, 4, 3, 5, 6), 36, "float32")
    w = data((9, 3, 2, 3, 6), 37, "float32")
    kw = dict(stride=stride, kernel_dilation=kdil, input_dilation=idil, flip=flip)
    theirs = mx.conv_general(mx.array(x), mx.array(w), padding=(list(lo), list(hi)), **kw)
    ours = vc.conv_general(mx.array(x), mx.array(w), padding=(lo, hi), **kw)
    assert isinstance(ours, mx.array) and ours.shape == theirs.shape
    scale = conv_general_reference(np.abs(f64(x)), np.abs(f64(w)), pad_lo=lo, pad_hi=hi, groups=1, **kw)
    assert_close(np.array(ours), f64(np.array(theirs)), 2 * scale, "float32", "conv_general vs mlx")


def test_strided_operands_match_contiguous_copies():
    """Views with reversed, transposed and sliced strides give the bits of
    their contiguous copies (the result is an exact function of the values)."""
    rng = np.random.default_rng(38)

    def odd_view(shape):
        # channels last in memory but read reversed along W, every other D slice
        base = rng.standard_normal((shape[0], 2 * shape[1], shape[2], shape[3], shape[4]))
        return base[:, ::2, :, ::-1, :]

    def odd_weight(shape):
        base = rng.standard_normal((shape[4], shape[1], shape[2], shape[3], shape[0]))
        return base.transpose(4, 1, 2, 3, 0)  # C_out with the largest stride last

    x = odd_view((2, 5, 4, 6, 6))
    w = odd_weight((9, 3, 2, 3, 2))
    kw = dict(stride=(2, 1, 2), padding=((1, 0, 1), (0, 1, 2)), groups=3)
    y = vc.conv3d(np.ascontiguousarray(x), np.ascontiguousarray(w), **kw)
    g = odd_view(y.shape)
    crop = dict(stride=2, groups=3, padding=((0, 0, 3), (0, 0, 1)))  # starts inside the input along W
    pairs = [
        (
            vc.conv3d_grad_input(g, w, x.shape, **kw),
            vc.conv3d_grad_input(*map(np.ascontiguousarray, (g, w)), x.shape, **kw),
        ),
        (
            vc.conv3d_grad_weight(x, g, w.shape, **kw),
            vc.conv3d_grad_weight(*map(np.ascontiguousarray, (x, g)), w.shape, **kw),
        ),
        (
            vc.conv_transpose3d(x, w, **crop),
            vc.conv_transpose3d(*map(np.ascontiguousarray, (x, w)), **crop),
        ),
    ]
    for ours, contiguous in pairs:
        assert ours.tobytes() == contiguous.tobytes()
