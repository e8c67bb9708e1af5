"""Where NaN and inf land in the data ops of training (issue 14): volconv's
conv_transpose3d and conv3d_grad_input against torch, whose transposed conv
scatters each real input element through the weight, so a NaN or inf weight
never meets the padding or an inserted zero; the input gradient of
conv_transpose3d against torch's autograd (a forward conv, which multiplies
the padding: 0 * NaN = NaN); conv_general against MLX's CPU conv_general
(which multiplies the padding only without dilation). The NaN, +inf and -inf
masks must be equal, and the finite values close. Each case runs on every
kernel set this CPU has, in every dtype, and the planner says which driver
ran it (dense stride phases or depthwise)."""

from __future__ import annotations

import numpy as np
import pytest
from reference_training import assert_same_nonfinite

import volconv as vc
from volconv import _core, _training

from conftest import FLOAT_DTYPES, cast, cpu_problem_plan

torch = pytest.importorskip("torch")
F = torch.nn.functional

ISAS = [i for i in ("avx512f", "avx2", "neon", "generic") if i in _core._cpu_supported_isas()]


class Case:
    """conv3d geometry (x: the forward input) seen from its data ops."""

    def __init__(self, name, size, cin, cout, k, s=1, p=0, d=1, g=1, op=0):
        self.name, self.size, self.cin, self.cout, self.k = name, size, cin, cout, k
        self.s, self.p, self.d, self.g, self.op = s, p, d, g, op

    def kwargs(self):
        return dict(stride=self.s, padding=self.p, dilation=self.d, groups=self.g)

    def weight_shape(
        self,
    ):  # conv3d's (C_out, K..., C_in/g); conv_transpose3d reads it as (C_in', K, C_out'/g)
        return (self.cout, self.k, self.k, self.k, self.cin // self.g)

    def t_size(self):  # conv_transpose3d's output for a y-sized input
        return tuple(
            (n - 1) * self.s - 2 * self.p + self.d * (self.k - 1) + self.op + 1 for n in self.y_size()
        )

    def y_size(self):
        return tuple((n + 2 * self.p - self.d * (self.k - 1) - 1) // self.s + 1 for n in self.size)


CASES = [
    Case("s1p1", (4, 4, 5), 4, 6, 3, p=1),
    Case("s1p2", (4, 3, 4), 3, 5, 3, p=2),
    Case("s2p0", (5, 4, 5), 4, 6, 3, s=2),
    Case("s2p1op1", (6, 5, 6), 8, 8, 3, s=2, p=1, op=1),
    Case("s3p2", (7, 6, 7), 4, 4, 3, s=3, p=2),
    Case("k2s2", (4, 4, 6), 16, 8, 2, s=2),
    Case("d2p2", (6, 5, 6), 4, 6, 3, p=2, d=2),
    Case("d2s2p1", (7, 6, 7), 4, 4, 3, s=2, p=1, d=2),
    Case("g2s2p1", (5, 5, 5), 4, 6, 3, s=2, p=1, g=2),
    Case("g2s1p1", (4, 4, 5), 6, 4, 3, p=1, g=2),
    Case("cin1s2p1", (5, 4, 5), 1, 4, 3, s=2, p=1),
    Case("dw-s1p1", (4, 4, 5), 4, 4, 3, p=1, g=4),
    Case("dw-s2p1op1", (6, 5, 6), 4, 4, 3, s=2, p=1, g=4, op=1),
]


def poison_weight(w):
    """NaN, +inf and -inf at corner taps, which lie in the padding for the
    border outputs, in different output and input channels."""
    w = w.copy()
    c_out, kd, kh, kw, cig = w.shape
    w[0, 0, 0, 0, 0] = np.nan
    w[c_out - 1, kd - 1, kh - 1, kw - 1, cig - 1] = np.inf
    w[c_out // 2, 0, kh - 1, 0, 0] = -np.inf
    return w


def poison_data(a):
    """NaN, +inf and -inf at a corner, the centre and an edge of channel 0."""
    a = a.copy()
    n, d, h, w, _ = a.shape
    a[0, 0, 0, 0, 0] = np.nan
    a[0, d // 2, h // 2, w // 2, 0] = -np.inf
    a[n - 1, d - 1, h // 2, w - 1, 0] = np.inf
    a[n - 1, min(1, d - 1), min(1, h - 1), min(1, w - 1), -1] = np.nan  # odd: a stride-2 conv reads it
    return a


def poison_both(a, w):
    """An infinite weight and infinite data in the same input channel, placed
    to meet (inf * inf, which a product with the weight zeroed would turn
    into NaN), with NaN and -inf elsewhere."""
    a, w = a.copy(), w.copy()
    _, kd, kh, kw, cig = w.shape
    w[0, kd // 2, kh // 2, kw // 2, 0] = np.inf
    w[-1, 0, 0, 0, cig - 1] = np.nan
    n, d, h, wd, _ = a.shape
    a[0, d // 2, h // 2, wd // 2, 0] = np.inf
    a[n - 1, 0, h - 1, 0, 0] = -np.inf
    return a, w


def operands(case, data_shape, w_shape, poison, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, data_shape)
    w = rng.uniform(-1, 1, w_shape)
    if poison == "weight":
        w = poison_weight(w)
    elif poison == "data":
        a = poison_data(a)
    else:
        a, w = poison_both(a, w)
    return cast(a, dtype), cast(w, dtype)


def ncdhw(a):
    return torch.from_numpy(np.asarray(a, np.float64)).permute(0, 4, 1, 2, 3)


def ndhwc(t):
    return t.detach().permute(0, 2, 3, 4, 1).numpy()


def torch_transpose_weight(w, groups):
    """(C_out, K..., C_in/g) -> torch's transposed (C_in, C_out/g, K...)."""
    c_out, *k, cig = w.shape
    cog = c_out // groups
    w = np.asarray(w, np.float64).reshape(groups, cog, *k, cig).transpose(0, 5, 1, 2, 3, 4)
    return torch.from_numpy(np.ascontiguousarray(w.reshape(groups * cig, cog, *k)))


def torch_conv3d_backward(case, gy, x, w, which):
    """torch's conv3d backward (float64, NCDHW): its input (which=0) or
    weight (which=1) gradient for grad_output gy (NDHWC)."""
    mask = [which == 0, which == 1, False]
    return torch.ops.aten.convolution_backward(
        ncdhw(gy), x, w, None, [case.s] * 3, [case.p] * 3, [case.d] * 3, False, [0] * 3, case.g, mask
    )[which]


def assert_same_placement(ours, ref, dtype, what):
    ours = np.asarray(ours, np.float64)
    assert ours.shape == ref.shape, what
    nonfinite = ~np.isfinite(ref)
    assert nonfinite.any(), f"{what}: the case must poison some outputs"
    assert_same_nonfinite(ours, ref, what)
    finite = np.isfinite(ref)
    if not finite.any():
        return
    tol = {"float64": 1e-9, "float32": 1e-4}.get(dtype, 3e-2) * max(1.0, np.abs(ref[finite]).max())
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=0, atol=tol, err_msg=what)


@pytest.fixture(params=ISAS)
def isa(request):
    _core._cpu_force_isa(request.param)
    yield request.param
    _core._cpu_force_isa("")


def expected_path(case):
    return "dw-data" if case.g == case.cin == case.cout else "phases"


@pytest.mark.parametrize("poison", ["weight", "data", "both"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_transpose3d_matches_torch(case, poison, isa):
    # conv_transpose3d of the forward geometry: input y-sized, output x-sized
    # (output_padding restores the rows the stride dropped).
    w_shape = (case.cin, case.k, case.k, case.k, case.cout // case.g)
    kw = dict(case.kwargs(), output_padding=case.op)
    for dtype in FLOAT_DTYPES:
        x, w = operands(case, (2, *case.y_size(), case.cout), w_shape, poison, dtype, 1)
        plan = cpu_problem_plan("conv_transpose3d", x, w, **kw)
        assert plan["path"] == expected_path(case), plan
        ours = vc.conv_transpose3d(x, w, **kw)
        ref = F.conv_transpose3d(ncdhw(x), torch_transpose_weight(w, case.g), **kw)
        assert_same_placement(ours, ndhwc(ref), dtype, f"{dtype} {plan['name']}")


@pytest.mark.parametrize("poison", ["weight", "data", "both"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv3d_grad_input_matches_torch(case, poison, isa):
    x_shape = (2, *case.size, case.cin)
    for dtype in FLOAT_DTYPES:
        gy, w = operands(case, (2, *case.y_size(), case.cout), case.weight_shape(), poison, dtype, 2)
        plan = cpu_problem_plan("conv3d_grad_input", gy, w, x_shape, **case.kwargs())
        assert plan["path"] == expected_path(case), plan
        ours = vc.conv3d_grad_input(gy, w, x_shape, **case.kwargs())
        ref = torch_conv3d_backward(
            case, gy, torch.zeros((2, case.cin, *case.size), dtype=torch.float64), ncdhw(w), 0
        )
        assert_same_placement(ours, ndhwc(ref), dtype, f"{dtype} {plan['name']}")


@pytest.mark.parametrize("poison", ["weight", "data", "both"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_transpose3d_grad_input_matches_torch_autograd(case, poison, isa):
    """The input gradient of conv_transpose3d is a forward conv: torch
    multiplies its padding, so a NaN weight there reaches the border."""
    w_shape = (case.cin, case.k, case.k, case.k, case.cout // case.g)
    kw = dict(case.kwargs(), output_padding=case.op)
    x_shape = (2, *case.y_size(), case.cout)
    for dtype in ("float32", "float64"):
        gy, w = operands(case, (2, *case.t_size(), case.cin), w_shape, poison, dtype, 3)
        xt = torch.zeros((2, case.cout, *case.y_size()), dtype=torch.float64, requires_grad=True)
        F.conv_transpose3d(xt, torch_transpose_weight(w, case.g), **kw).backward(ncdhw(gy))
        ours = _training._conv_transpose3d_grad_input(gy, w, x_shape, **kw)
        assert_same_placement(ours, ndhwc(xt.grad), dtype, dtype)


GENERAL = [
    dict(stride=1, padding=1),  # MLX multiplies the padding here (explicit GEMM)
    dict(stride=2, padding=2, flip=True),
    dict(stride=1, padding=1, input_dilation=2, flip=True),
    dict(stride=2, padding=(0, 1, 2), input_dilation=3),
    dict(stride=1, padding=2, kernel_dilation=2),  # dilation: MLX skips the padding
    dict(stride=1, padding=((2, 0, 1), (0, 1, 2)), kernel_dilation=2, input_dilation=2, flip=True),
]


@pytest.mark.parametrize("poison", ["weight", "data", "both"])
@pytest.mark.parametrize("kw", GENERAL, ids=str)
def test_conv_general_matches_mlx(kw, poison, isa):
    mx = pytest.importorskip("mlx.core")
    for dtype in ("float32", "float16"):
        x, w = operands(None, (2, 5, 4, 5, 4), (6, 3, 3, 3, 4), poison, dtype, 4)
        mkw = dict(kw)
        if isinstance(kw["padding"], tuple) and isinstance(kw["padding"][0], tuple):
            mkw["padding"] = tuple(list(p) for p in kw["padding"])
        ref = np.asarray(mx.conv_general(mx.array(x), mx.array(w), **mkw).astype(mx.float32), np.float64)
        ours = vc.conv_general(x, w, **kw)
        assert_same_placement(ours, ref, dtype, dtype)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv3d_grad_input_with_a_padding_mode_matches_torch(mode, stride, isa):
    """A padding mode pads with input elements, not zeros: the gradient of
    each padded position goes back to the element it copied (torch's F.pad
    then conv3d, through autograd), NaN and inf included."""
    rng = np.random.default_rng(6)
    x = rng.uniform(-1, 1, (1, 5, 5, 5, 4))
    w = poison_weight(rng.uniform(-1, 1, (4, 3, 3, 3, 4)))
    xt = ncdhw(x).requires_grad_()
    y = F.conv3d(F.pad(xt, (1,) * 6, mode=mode), ncdhw(w), stride=stride)
    gy = rng.uniform(-1, 1, tuple(y.shape))
    y.backward(torch.from_numpy(gy))
    gy_nd = np.ascontiguousarray(gy.transpose(0, 2, 3, 4, 1))
    ours = vc.conv3d_grad_input(gy_nd, w, x.shape, stride=stride, padding=1, padding_mode=mode)
    assert_same_placement(ours, ndhwc(xt.grad), "float64", mode)


@pytest.mark.parametrize("poison", ["grad_output", "input", "both"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv3d_grad_weight_matches_torch(case, poison, isa):
    """conv3d's weight gradient multiplies the zero padding by grad_output
    (torch sums over the padded input): a NaN or inf grad_output element
    whose window reaches the padding makes its tap's weights NaN."""
    w_shape = case.weight_shape()
    for dtype in FLOAT_DTYPES:
        rng = np.random.default_rng(7)
        x = rng.uniform(-1, 1, (2, *case.size, case.cin))
        gy = rng.uniform(-1, 1, (2, *case.y_size(), case.cout))
        if poison in ("grad_output", "both"):
            gy = poison_data(gy)
        if poison in ("input", "both"):
            x = poison_data(x)
        x, gy = cast(x, dtype), cast(gy, dtype)
        plan = cpu_problem_plan("conv3d_grad_weight", x, gy, w_shape, **case.kwargs())
        ours = vc.conv3d_grad_weight(x, gy, w_shape, **case.kwargs())
        w0 = torch.zeros((case.cout, case.cin // case.g, case.k, case.k, case.k), dtype=torch.float64)
        ref = torch_conv3d_backward(case, gy, ncdhw(x), w0, 1)
        assert_same_placement(ours, ndhwc(ref), dtype, f"{dtype} {plan['name']}")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv3d_grad_weight_with_a_padding_mode_matches_torch(mode, isa):
    """A padding mode pads with input elements, so a NaN grad_output element
    meets no zero there (torch's F.pad then conv3d, through autograd)."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (1, 5, 5, 5, 4))
    w = rng.uniform(-1, 1, (4, 3, 3, 3, 4))
    wt = ncdhw(w).requires_grad_()
    y = F.conv3d(F.pad(ncdhw(x), (1,) * 6, mode=mode), wt)
    gy = poison_data(rng.uniform(-1, 1, tuple(y.shape)).transpose(0, 2, 3, 4, 1))
    y.backward(ncdhw(gy))
    ours = vc.conv3d_grad_weight(x, np.ascontiguousarray(gy), w.shape, padding=1, padding_mode=mode)
    assert_same_placement(ours, ndhwc(wt.grad), "float64", mode)
