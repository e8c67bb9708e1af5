"""conv3d's padding modes (reflect, replicate, circular; per axis, asymmetric)
on the CPU: every path of the planner (asked through conftest.cpu_plan),
every ISA this machine can force, every dtype, against "pad with numpy
(np.pad), then convolve with no padding" in float64 (tests/reference.py);
the gradients against torch.autograd of F.pad + F.conv3d in float64, and
the adjoint identities."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import volconv
from volconv import _core

from cases import _c
from conftest import FLOAT_DTYPES, cast, cpu_plan, path_for_16bit_input
from reference import TOLERANCE, assert_within, conv3d_reference

SUPPORTED = _core._cpu_supported_isas()
ISAS = [i for i in ("avx512bf16", "avx512f", "avx2", "neon", "generic") if i in SUPPORTED]

NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}

MODE_SETS = {
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
    "mixed": ("replicate", "reflect", "circular"),
    "zeros_d": ("zeros", "circular", "reflect"),
}

# One case per path, with padding on every axis that differs per side (the
# causal temporal ((2, ...), (0, ...)) among them) and strided / dilated
# variants of the paths whose W border code has a stride.
PATH_CASES = {
    "igemm": _c("igemm", 1, 4, 5, 7, 8, 21, 3, p=((2, 1, 1), (0, 1, 2))),
    "igemm_strided": _c(
        "igemm_s", 1, 5, 6, 9, 8, 12, 3, s=(1, 2, 2), dil=(1, 1, 2), p=((1, 2, 2), (1, 1, 2))
    ),
    "pointwise": _c("pointwise", 2, 2, 3, 5, 16, 19, 1, p=((1, 1, 1), (1, 0, 2))),
    "fold-w": _c("fold_w", 1, 3, 5, 9, 5, 13, 3, p=((1, 1, 2), (1, 1, 1))),
    "fold-w_strided": _c("fold_w_s", 1, 3, 5, 10, 5, 9, 3, s=(1, 1, 2), p=((1, 1, 1), (1, 1, 2))),
    "small-cin": _c("small_cin", 1, 3, 5, 9, 4, 12, 3, p=((1, 1, 2), (1, 2, 1)), g=2),
    "small-cin_strided": _c(
        "small_cin_s", 1, 3, 5, 10, 4, 12, 3, s=(1, 1, 2), dil=(1, 1, 2), p=((1, 1, 2), (1, 1, 1)), g=2
    ),
    "few-cin": _c("few_cin", 1, 4, 5, 11, 1, 19, 3, p=((1, 2, 2), (1, 1, 2))),
    "few-cin_strided": _c(
        "few_cin_s", 1, 4, 5, 11, 3, 9, 3, s=(1, 1, 2), dil=(1, 1, 2), p=((1, 1, 3), (1, 1, 2))
    ),
    # 5-8 input channels, 5-8 output channels: the narrow row kernel where the ISA has one (x86).
    "few-cin_narrow": _c("few_cin_n", 1, 4, 5, 13, 6, 7, 3, s=(1, 1, 2), p=((1, 2, 1), (1, 1, 2))),
    "dwconv": _c("dwconv", 1, 3, 4, 13, 20, 20, 3, p=((2, 1, 2), (0, 1, 1)), g=20),
    "dwconv_strided": _c(
        "dwconv_s", 1, 3, 4, 12, 8, 8, (3, 3, 5), s=(1, 1, 2), p=((1, 1, 3), (1, 1, 2)), g=8
    ),
    "grouped": _c("grouped", 1, 3, 4, 5, 16, 18, 3, s=(1, 2, 1), p=1, g=2),
    "small-cout": _c("small_cout", 1, 4, 5, 11, 16, 3, 3, p=((1, 2, 2), (1, 1, 2))),
    "small-cout_strided": _c(
        "small_cout_s", 1, 4, 5, 12, 18, 4, 3, s=(1, 1, 2), dil=(1, 1, 2), p=((1, 1, 3), (1, 1, 2)), g=2
    ),
}


def modes3(mode) -> tuple[str, str, str]:
    return (mode, mode, mode) if isinstance(mode, str) else tuple(mode)


def pad_numpy(x, lo, hi, mode) -> np.ndarray:
    """(N, D, H, W, C) padded axis by axis with np.pad's own modes."""
    x = np.asarray(x, np.float64)
    for axis, m in enumerate(modes3(mode)):
        widths = [(0, 0)] * 5
        widths[axis + 1] = (lo[axis], hi[axis])
        x = np.pad(x, widths, mode=NUMPY_MODE[m])
    return x


def expected(x, w, case, mode):
    """Pad, then convolve without padding; and the same on |x|, |w| (the
    sum of |terms| that scales the tolerance)."""
    p = dict(stride=case.stride, dilation=case.dilation, groups=case.groups)
    xp = pad_numpy(x, case.pad_lo, case.pad_hi, mode)
    w64 = np.asarray(w, np.float64)
    return conv3d_reference(xp, w64, **p), conv3d_reference(np.abs(xp), np.abs(w64), **p)


def operands(case, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = cast(rng.uniform(-1, 1, case.input), dtype)
    w = cast(rng.uniform(-1, 1, case.weight_shape), dtype)
    return x, w


def expected_path(name: str, dtype: str, isa: str) -> str:
    """The path a PATH_CASES entry reaches in this dtype and ISA."""
    base = name.split("_")[0]
    if dtype == "float64":
        return "direct"
    if dtype == "float32":
        if name == "few-cin_narrow" and isa in ("neon", "generic"):
            return "fold-w"  # no narrow row kernel: W folded into K
        return {"pointwise": "igemm", "grouped": "igemm"}.get(base, base)
    if name == "few-cin_narrow" and isa in ("neon", "generic"):
        return "packed-a"  # no narrow row kernel; fold-W reads float32 only
    case = PATH_CASES[name]
    return path_for_16bit_input(base, case.input[4] // case.groups, dtype, isa)


@pytest.fixture(params=ISAS)
def isa(request):
    _core._cpu_force_isa(request.param)
    yield request.param
    _core._cpu_force_isa("")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", list(MODE_SETS))
@pytest.mark.parametrize("name", list(PATH_CASES))
def test_forward_every_path(isa, name, mode, dtype):
    case = PATH_CASES[name]
    x, w = operands(case, dtype)
    kw = case.api_kwargs()
    plan = cpu_plan(x, w, **kw, padding_mode=MODE_SETS[mode])
    assert plan["path"] == expected_path(name, dtype, isa), plan["name"]
    y = volconv.conv3d(x, w, **kw, padding_mode=MODE_SETS[mode])
    assert y.dtype == x.dtype
    ref, scale = expected(x, w, case, MODE_SETS[mode])
    assert_within(y, ref, TOLERANCE[dtype] * scale + 1e-30, dtype, f"{name} {mode}")


def test_every_path_is_covered():
    """The sweep above reaches every CPU path (bf16 pairs only on CPUs with
    avx512_bf16)."""
    seen = set()
    for isa in ISAS:
        _core._cpu_force_isa(isa)
        try:
            for case in PATH_CASES.values():
                for dtype in FLOAT_DTYPES:
                    x, w = operands(case, dtype)
                    plan = cpu_plan(x, w, **case.api_kwargs(), padding_mode="reflect")
                    seen.add("bf16-pairs" if plan["kernel"].startswith("bf16-igemm") else plan["path"])
        finally:
            _core._cpu_force_isa("")
    paths = {"igemm", "packed-a", "small-cin", "fold-w", "few-cin", "small-cout", "dwconv", "direct"}
    if "avx512bf16" in ISAS:
        paths.add("bf16-pairs")
    assert seen >= paths, seen


# K in chunks (each resumes from the tile's partial sums): the igemm panel
# walked in chunks of taps, and packed-a's gathered rows in chunks (the
# cases of test_cpu_kernels.py, with the reference cache sizes).
CHUNKED = [
    (_c("panel_chunks", 1, 2, 2, 4, 640, 64, 3, p=1), "float32", "igemm"),
    (_c("packed_a_chunks", 1, 4, 4, 5, 256, 20, 3, p=((2, 1, 1), (0, 1, 2))), "float16", "packed-a"),
]


@pytest.mark.parametrize("case,dtype,path", CHUNKED, ids=lambda v: getattr(v, "name", str(v)))
def test_chunked_k(no_winograd, case, dtype, path):
    x, w = operands(case, dtype, seed=3)
    mode = ("replicate", "reflect", "circular")
    _core._cpu_override_caches(32 << 10, 1 << 20, 8 << 20)
    try:
        plan = cpu_plan(x, w, **case.api_kwargs(), padding_mode=mode)
        assert plan["k_chunks"] > 1 and plan["path"] == path, plan
        y = volconv.conv3d(x, w, **case.api_kwargs(), padding_mode=mode)
    finally:
        _core._cpu_override_caches(0, 0, 0)
    ref, scale = expected(x, w, case, mode)
    assert_within(y, ref, TOLERANCE[dtype] * scale + 1e-30, dtype, case.name)


def test_strided_channels():
    """f32 input whose channels are not contiguous: copied to contiguous
    channels first, then read in place through the padding map."""
    case = PATH_CASES["igemm"]
    x, w = operands(case, "float32", seed=3)
    mode = ("replicate", "reflect", "circular")
    xs = np.zeros(case.input[:4] + (2 * case.input[4],), np.float32)[..., ::2]
    xs[...] = x
    assert cpu_plan(xs, w, **case.api_kwargs(), padding_mode=mode)["path"] == "igemm"
    y = volconv.conv3d(xs, w, **case.api_kwargs(), padding_mode=mode)
    ref, scale = expected(x, w, case, mode)
    assert_within(y, ref, TOLERANCE["float32"] * scale + 1e-30, "float32", "strided channels")


@pytest.mark.parametrize("name", ["igemm", "dwconv", "few-cin", "small-cin", "small-cout_strided"])
def test_with_epilogue(name):
    """Padding modes combine with the fused epilogue: the row drivers add
    the W border's padded taps before the epilogue runs."""
    case = PATH_CASES[name]
    x, w = operands(case, "float32", seed=4)
    rng = np.random.default_rng(4)
    ref, scale = expected(x, w, case, "circular")
    b = rng.uniform(-1, 1, case.c_out).astype(np.float32)
    r = rng.uniform(-1, 1, ref.shape).astype(np.float32)
    y = volconv.conv3d(
        x, w, **case.api_kwargs(), padding_mode="circular", bias=b, activation="relu", residual=r
    )
    want = np.maximum(ref + b, 0) + r
    assert_within(y, want, TOLERANCE["float32"] * (scale + np.abs(b) + np.abs(want)) + 1e-30, "float32", name)


def test_same_padding():
    case = _c("same", 1, 4, 5, 6, 8, 8, 3, p=1)
    x, w = operands(case, "float64", seed=4)
    y = volconv.conv3d(x, w, padding="same", padding_mode="replicate")
    ref, _ = expected(x, w, case, "replicate")
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_nonfinite_weight_reads_padding_values():
    """An infinite weight at a tap that reads a reflected (positive) value
    gives +inf, as "pad, then conv" does: the NaN post-pass for taps in zero
    padding must not fire there. Zero padding on D still gives NaN (0 * inf)."""
    case = _c("inf", 1, 3, 4, 5, 2, 2, 3, p=1)
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.0, case.input).astype(np.float32)
    w = rng.uniform(0.5, 1.0, case.weight_shape).astype(np.float32)
    w[0, 1, 0, 0, 1] = np.inf  # tap (kd 1, kh 0, kw 0): in the H and W padding at the borders
    for mode in ("reflect", ("zeros", "replicate", "circular"), ("replicate", "zeros", "reflect")):
        with np.errstate(invalid="ignore"):
            ref, _ = expected(x, w, case, mode)
        for dtype in ("float32", "float64"):
            y = np.asarray(volconv.conv3d(cast(x, dtype), cast(w, dtype), padding=1, padding_mode=mode))
            np.testing.assert_array_equal(np.isnan(y), np.isnan(ref), err_msg=f"{mode} {dtype}")
            np.testing.assert_array_equal(np.isinf(y), np.isinf(ref), err_msg=f"{mode} {dtype}")
    # Zeros on H: the tap lies in zero padding at oh = 0 -> NaN there only.
    y = volconv.conv3d(x, w, padding=1, padding_mode=("replicate", "zeros", "reflect"))
    assert np.isnan(y[0, :, 0, :, 0]).all() and not np.isnan(y[0, :, 1:, :, 0]).any()


# ---------------------------------------------------------------- gradients


def torch_grads(x, w, gy, case, mode):
    """x.grad and w.grad of sum(conv3d(pad(x), w) * gy) by torch.autograd in
    float64 (F.pad one axis at a time, then F.conv3d without padding)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    xt = torch.tensor(np.asarray(x, np.float64)).permute(0, 4, 1, 2, 3).requires_grad_()
    wt = torch.tensor(np.asarray(w, np.float64)).permute(0, 4, 1, 2, 3).requires_grad_()
    xp = xt
    for axis, m in enumerate(modes3(mode)):
        amounts = [0] * 6  # (W lo, W hi, H lo, H hi, D lo, D hi)
        amounts[2 * (2 - axis)] = case.pad_lo[axis]
        amounts[2 * (2 - axis) + 1] = case.pad_hi[axis]
        xp = F.pad(xp, amounts) if m == "zeros" else F.pad(xp, amounts, mode=TORCH_MODE[m])
    y = F.conv3d(xp, wt, stride=case.stride, dilation=case.dilation, groups=case.groups)
    y.backward(torch.tensor(np.asarray(gy, np.float64)).permute(0, 4, 1, 2, 3))
    return xt.grad.permute(0, 2, 3, 4, 1).numpy(), wt.grad.permute(0, 2, 3, 4, 1).numpy()


GRAD_CASES = {
    k: PATH_CASES[k] for k in ("igemm", "igemm_strided", "pointwise", "small-cin", "few-cin", "dwconv")
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", list(MODE_SETS))
@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradients_against_torch_autograd(name, mode, dtype):
    case = GRAD_CASES[name]
    m = MODE_SETS[mode]
    x, w = operands(case, dtype, seed=6)
    out_shape = expected(x, w, case, m)[0].shape
    gy = cast(np.random.default_rng(7).uniform(-1, 1, out_shape), dtype)
    kw = case.api_kwargs()
    gx = volconv.conv3d_grad_input(gy, w, x.shape, **kw, padding_mode=m)
    gw = volconv.conv3d_grad_weight(x, gy, w.shape, **kw, padding_mode=m)
    assert gx.dtype == x.dtype and gw.dtype == x.dtype
    ref_x, ref_w = torch_grads(x, w, gy, case, m)
    # The same composition on absolute values: the sum of |terms| per element.
    scale_x, scale_w = torch_grads(
        np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), np.abs(gy.astype(np.float64)), case, m
    )
    # float16/bfloat16: a folded element is rounded twice (its unpadded part,
    # then the sum with the padded positions' part).
    factor = 1.0 if dtype in ("float32", "float64") else 2.0
    tiny = 2.0**-24 if dtype == "float16" else 1e-30
    assert_within(gx, ref_x, factor * TOLERANCE[dtype] * scale_x + tiny, dtype, f"grad_input {name} {mode}")
    assert_within(gw, ref_w, TOLERANCE[dtype] * scale_w + tiny, dtype, f"grad_weight {name} {mode}")


@pytest.mark.parametrize("mode", list(MODE_SETS))
def test_adjoint_identities(mode):
    """<conv(x), g> = <x, grad_input(g)> = <w, grad_weight(x, g)> in float64,
    for a strided, dilated, grouped call: nothing but volconv itself."""
    case = _c("adjoint", 2, 5, 6, 7, 6, 9, 3, s=(2, 1, 2), dil=(1, 2, 1), p=((2, 2, 1), (1, 2, 2)), g=3)
    m = MODE_SETS[mode]
    rng = np.random.default_rng(8)
    x, w = operands(case, "float64", seed=8)
    kw = case.api_kwargs()
    y = volconv.conv3d(x, w, **kw, padding_mode=m)
    g = rng.uniform(-1, 1, y.shape)
    gx = volconv.conv3d_grad_input(g, w, x.shape, **kw, padding_mode=m)
    gw = volconv.conv3d_grad_weight(x, g, w.shape, **kw, padding_mode=m)
    a, b, c = np.vdot(y, g), np.vdot(x, gx), np.vdot(w, gw)
    assert abs(a - b) <= 1e-12 * np.vdot(np.abs(y), np.abs(g)) + 1e-12, (a, b)
    assert abs(a - c) <= 1e-12 * np.vdot(np.abs(y), np.abs(g)) + 1e-12, (a, c)


def test_folds_stay_in_their_batch_element():
    """The padded positions' gradients fold into their own batch element:
    with a gradient only for element 1, element 0's input gradient is zero."""
    case = _c("batch", 2, 3, 4, 5, 4, 4, 3, p=((2, 1, 1), (0, 1, 1)))
    x, w = operands(case, "float64", seed=9)
    y_shape = expected(x, w, case, "replicate")[0].shape
    gy = np.zeros(y_shape)
    gy[1] = 1.0  # only batch element 1 has a gradient
    gx = volconv.conv3d_grad_input(gy, w, x.shape, **case.api_kwargs(), padding_mode="replicate")
    assert not gx[0].any()
    ref_x, _ = torch_grads(x, w, gy, case, "replicate")
    np.testing.assert_allclose(gx, ref_x, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "op",
    ["conv3d", "conv3d_grad_input", "conv3d_grad_weight"],
)
def test_rules_follow_torch_pad(op):
    x = np.zeros((1, 3, 4, 5, 2), np.float32)
    w = np.zeros((2, 3, 3, 3, 2), np.float32)

    def call(padding, mode):
        if op == "conv3d":
            return volconv.conv3d(x, w, padding=padding, padding_mode=mode)
        if op == "conv3d_grad_input":
            return volconv.conv3d_grad_input(
                np.zeros((1, 3, 4, 5, 2), np.float32), w, x.shape, padding=padding, padding_mode=mode
            )
        return volconv.conv3d_grad_weight(
            x, np.zeros((1, 3, 4, 5, 2), np.float32), w.shape, padding=padding, padding_mode=mode
        )

    # reflect: padding < size (D = 3: 3 is too much, 2 is fine)
    with pytest.raises(
        ValueError, match=rf"^\[{op}\] Padding mode 'reflect' needs padding smaller than the input size"
    ):
        call(((3, 1, 1), (0, 1, 1)), "reflect")
    # circular: padding <= size
    with pytest.raises(
        ValueError, match=rf"^\[{op}\] Padding mode 'circular' needs padding at most the input size"
    ):
        call(((1, 1, 1), (1, 1, 6)), ("zeros", "zeros", "circular"))
    # the same amounts are fine where the axis allows them
    call(((1, 1, 1), (1, 1, 1)), "circular")


def test_reflect_bound_is_torchs():
    """torch.nn.functional.pad accepts reflect padding size - 1 and refuses
    size; so does conv3d (the same call, both answers)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 4, 5, 2))
    w = np.ones((1, 1, 1, 1, 2))
    F.pad(torch.zeros(1, 2, 3, 4, 5), (0, 0, 0, 0, 2, 2), mode="reflect")
    volconv.conv3d(x, w, padding=((2, 0, 0), (2, 0, 0)), padding_mode="reflect")
    with pytest.raises(RuntimeError):
        F.pad(torch.zeros(1, 2, 3, 4, 5), (0, 0, 0, 0, 3, 0), mode="reflect")
    with pytest.raises(ValueError):
        volconv.conv3d(x, w, padding=((3, 0, 0), (0, 0, 0)), padding_mode="reflect")


@pytest.mark.parametrize(
    "mode, error, message",
    [
        ("mirror", ValueError, "Expected padding_mode to be 'zeros', 'reflect', 'replicate' or 'circular'"),
        (("reflect", "zeros"), ValueError, "Expected padding_mode to be a string or a tuple of 3 strings"),
        (1, TypeError, "Expected padding_mode to be a string but got int"),
        (("reflect", None, "zeros"), TypeError, "Expected padding_mode to be a string but got NoneType"),
    ],
)
def test_bad_padding_mode(mode, error, message):
    x = np.zeros((1, 3, 4, 5, 2), np.float32)
    w = np.zeros((2, 3, 3, 3, 2), np.float32)
    with pytest.raises(error, match=r"^\[conv3d\] " + message):
        volconv.conv3d(x, w, padding=1, padding_mode=mode)
    with pytest.raises(error, match=r"^\[conv3d_grad_weight\] " + message):
        volconv.conv3d_grad_weight(
            x, np.zeros((1, 3, 4, 5, 2), np.float32), w.shape, padding=1, padding_mode=mode
        )


def test_gpu_reads_padding_modes():
    """A GPU stream reads the padding modes in the Metal kernels' loaders, as
    the CPU does (the emulator checks every kernel family:
    tests/test_metal_emulated_epilogue.py)."""
    # Metal only: the CUDA backend runs depthwise problems without these.
    if sys.platform != "darwin" or not volconv.is_available(volconv.gpu):
        pytest.skip("no Metal GPU here")
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (1, 3, 4, 5, 2)).astype(np.float32)
    w = rng.uniform(-1, 1, (2, 3, 3, 3, 2)).astype(np.float32)
    y = volconv.conv3d(x, w, padding=1, padding_mode="replicate", stream=volconv.gpu)
    cpu = volconv.conv3d(x, w, padding=1, padding_mode="replicate", stream=volconv.cpu)
    np.testing.assert_allclose(np.asarray(y), np.asarray(cpu), rtol=1e-5, atol=1e-5)


def test_inputs_not_modified():
    case = PATH_CASES["igemm"]
    x, w = operands(case, "float32", seed=10)
    copies = (x.copy(), w.copy())
    y = volconv.conv3d(x, w, **case.api_kwargs(), padding_mode="reflect")
    volconv.conv3d_grad_input(y, w, x.shape, **case.api_kwargs(), padding_mode="reflect")
    volconv.conv3d_grad_weight(x, y, w.shape, **case.api_kwargs(), padding_mode="reflect")
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(w, copies[1])
