"""conv3d's fused epilogue (bias, then activation, then residual) on the CPU:
every path of the planner (asked through _core._cpu_plan), every ISA this
machine can force, every dtype, against "conv (tests/reference.py), add bias,
activate, add residual" computed in float64 with numpy from the definitions."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import volconv
from volconv import _core
from volconv._arrays import as_operand
from volconv._params import conv_params

from cases import Case, _c
from conftest import FLOAT_DTYPES, cast, path_for_16bit_input
from reference import TOLERANCE, conv3d_reference

SUPPORTED = _core._cpu_supported_isas()
ISAS = [i for i in ("avx512bf16", "avx512f", "avx2", "neon", "generic") if i in SUPPORTED]
ACTIVATIONS = [None, "relu", "silu", "gelu_tanh"]


def activate(v: np.ndarray, name: str | None) -> np.ndarray:
    """float64, written from the definitions."""
    if name is None:
        return v
    if name == "relu":
        return np.maximum(v, 0.0)
    if name == "silu":
        return v / (1.0 + np.exp(-v))
    assert name == "gelu_tanh"
    return 0.5 * v * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * v**3)))


# One case per path (f32 unless a dtype sends it elsewhere); C_out and W are
# chosen so tiles have channel tails (C_out not a multiple of any NR) and
# position tails (M not a multiple of any MR).
PATH_CASES = {
    "igemm": _c("igemm", 1, 3, 4, 7, 8, 21, 3, p=1),
    "pointwise": _c("pointwise", 2, 2, 3, 5, 16, 19, 1),
    "fold-w": _c("fold_w", 1, 3, 5, 9, 5, 13, 3, p=1),
    "small-cin": _c("small_cin", 1, 3, 5, 9, 4, 12, 3, p=1, g=2),
    "few-cin": _c("few_cin", 1, 4, 5, 11, 3, 19, 3, p=1),
    "dwconv": _c("dwconv", 1, 3, 4, 13, 20, 20, 3, p=1, g=20),
    "grouped": _c("grouped", 1, 3, 4, 5, 16, 18, 3, s=(1, 2, 1), p=1, g=2),
    "small-cout": _c("small_cout", 1, 3, 4, 13, 24, 6, 3, p=1, g=2),
}


@pytest.fixture(params=ISAS)
def isa(request):
    _core._cpu_force_isa(request.param)
    yield request.param
    _core._cpu_force_isa("")


def plan_of(x, w, case: Case, **epilogue) -> dict:
    xo, wo = as_operand(x, "conv3d", "input"), as_operand(w, "conv3d", "weight")
    kw = case.api_kwargs()
    params = conv_params(kw["padding"], kw["stride"], kw["dilation"], kw["groups"], case.kernel)
    return _core._cpu_plan(xo.storage, xo.dtype, wo.storage, wo.dtype, params, **epilogue)


def operands(case: Case, dtype: str, seed: int = 0):
    """Input, weight (scaled so the conv is of order 1: the activations'
    curved parts are exercised), bias, and the residual in the output dtype."""
    rng = np.random.default_rng(seed)
    x = cast(rng.uniform(-1, 1, case.input), dtype)
    k = int(np.prod(case.weight_shape[1:]))
    w = cast(rng.uniform(-1, 1, case.weight_shape) * (3.0 / np.sqrt(k)), dtype)
    bias = cast(rng.uniform(-1, 1, case.c_out), dtype)
    out_shape = conv3d_reference(np.zeros(case.input), np.zeros(case.weight_shape), **case.params()).shape
    residual = cast(rng.uniform(-1, 1, out_shape), dtype)
    return x, w, bias, residual


def assert_epilogue_close(y, x, w, dtype, case: Case, bias=None, activation=None, residual=None):
    """|y - expected| within the dtype's tolerance of everything that can
    carry rounding: the conv's terms (scaled by the activation's slope, at
    most 1.13 for GELU), the bias, the residual and the result."""
    p = case.params()
    pre = conv3d_reference(x, w, **p)
    scale = conv3d_reference(np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64)), **p)
    if bias is not None:
        b = np.asarray(bias, np.float64)
        pre = pre + b
        scale = scale + np.abs(b)
    expected = activate(pre, activation)
    scale = 1.2 * scale
    if residual is not None:
        r = np.asarray(residual, np.float64)
        expected = expected + r
        scale = scale + np.abs(r)
    scale = scale + np.abs(expected)
    y64 = np.asarray(y, np.float64)
    assert y64.shape == expected.shape
    bound = TOLERANCE[dtype] * scale + 1e-30
    bad = ~(np.abs(y64 - expected) <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {y64.size} elements off ({dtype}, {activation}); first at {i}: "
            f"got {y64[i]!r}, expected {expected[i]!r}, allowed {bound[i]:.3g}"
        )


def expected_path(name: str, dtype: str, isa: str) -> str:
    """The path a PATH_CASES entry reaches in this dtype and ISA."""
    if dtype == "float64":
        return "direct"
    if dtype == "float32":
        return {"pointwise": "igemm", "grouped": "igemm"}.get(name, name)
    case = PATH_CASES[name]
    return path_for_16bit_input(name, case.input[4] // case.groups, dtype, isa)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", list(PATH_CASES))
def test_full_epilogue_every_path(isa, name, dtype, activation):
    case = PATH_CASES[name]
    x, w, bias, residual = operands(case, dtype)
    plan = plan_of(
        x, w, case, bias=True, activation=getattr(_core.Activation, activation or "none"), residual=True
    )
    assert plan["path"] == expected_path(name, dtype, isa), plan["name"]
    y = volconv.conv3d(x, w, **case.api_kwargs(), bias=bias, activation=activation, residual=residual)
    assert y.dtype == x.dtype
    assert_epilogue_close(y, x, w, dtype, case, bias, activation, residual)


@pytest.mark.parametrize("part", ["bias", "activation", "residual"])
@pytest.mark.parametrize("name", list(PATH_CASES))
def test_each_part_alone(isa, name, part):
    case = PATH_CASES[name]
    x, w, bias, residual = operands(case, "float32", seed=1)
    kw = {"bias": bias} if part == "bias" else {"residual": residual} if part == "residual" else {}
    act = "silu" if part == "activation" else None
    y = volconv.conv3d(x, w, **case.api_kwargs(), activation=act, **kw)
    assert_epilogue_close(y, x, w, "float32", case, kw.get("bias"), act, kw.get("residual"))


def test_every_path_is_covered():
    """The sweep above reaches every CPU path with an epilogue (bf16 pairs
    only on CPUs with avx512_bf16)."""
    seen = set()
    for isa in ISAS:
        _core._cpu_force_isa(isa)
        try:
            for case in PATH_CASES.values():
                for dtype in FLOAT_DTYPES:
                    x, w, _, _ = operands(case, dtype)
                    plan = plan_of(x, w, case, bias=True, residual=True)
                    seen.add("bf16-pairs" if plan["kernel"].startswith("bf16-igemm") else plan["path"])
        finally:
            _core._cpu_force_isa("")
    paths = {"igemm", "packed-a", "small-cin", "fold-w", "few-cin", "small-cout", "dwconv", "direct"}
    if "avx512bf16" in ISAS:
        paths.add("bf16-pairs")
    assert seen >= paths, seen


def test_plan_records_the_epilogue():
    case = PATH_CASES["igemm"]
    x, w, _, _ = operands(case, "float32")
    plain = plan_of(x, w, case)
    fused = plan_of(x, w, case, bias=True, activation=_core.Activation.gelu_tanh, residual=True)
    assert (plain["bias"], plain["activation"], plain["residual"]) == (False, "none", False)
    assert (fused["bias"], fused["activation"], fused["residual"]) == (True, "gelu_tanh", True)
    assert fused["name"] == plain["name"] + "+bias+gelu_tanh+residual"
    assert fused["path"] == plain["path"] and fused["kernel"] == plain["kernel"]


@pytest.mark.parametrize("bias_step", [2, -1])
@pytest.mark.parametrize("name", ["igemm", "dwconv", "few-cin", "small-cout", "direct"])
def test_strided_residual_and_bias(name, bias_step):
    """A residual and a bias with any strides (channels not contiguous,
    reversed) are read through their strides."""
    dtype = "float64" if name == "direct" else "float32"
    case = PATH_CASES["igemm" if name == "direct" else name]
    x, w, bias, residual = operands(case, dtype, seed=2)
    big = np.zeros(residual.shape[:4] + (2 * residual.shape[4],), residual.dtype)
    big[..., ::2] = residual
    r_view = big[..., ::2]
    if bias_step == 2:
        b_view = np.zeros(2 * bias.size, bias.dtype)[::2]
        b_view[:] = bias
    else:
        b_view = bias[::-1].copy()[::-1]
    assert r_view.strides[4] == 2 * residual.itemsize and b_view.strides[0] == bias_step * bias.itemsize
    y = volconv.conv3d(x, w, **case.api_kwargs(), bias=b_view, activation="relu", residual=r_view)
    assert_epilogue_close(y, x, w, dtype, case, bias, "relu", residual)


@pytest.mark.parametrize("bias_dtype", FLOAT_DTYPES)
def test_bias_of_any_float_dtype(bias_dtype):
    """The bias is converted on read: its own dtype need not be the output's."""
    case = PATH_CASES["igemm"]
    x, w, bias, _ = operands(case, "float32", seed=3)
    b = cast(bias, bias_dtype)
    y = volconv.conv3d(x, w, **case.api_kwargs(), bias=b)
    assert_epilogue_close(y, x, w, "float32", case, b)


def test_inputs_not_modified():
    case = PATH_CASES["igemm"]
    x, w, bias, residual = operands(case, "float32", seed=4)
    copies = [a.copy() for a in (x, w, bias, residual)]
    volconv.conv3d(x, w, **case.api_kwargs(), bias=bias, activation="silu", residual=residual)
    for a, c in zip((x, w, bias, residual), copies):
        np.testing.assert_array_equal(a, c)


def test_torch_and_mlx_operands():
    """Bias and residual of other kinds (torch tensors, mlx arrays) work as
    the input does."""
    torch = pytest.importorskip("torch")
    case = PATH_CASES["igemm"]
    x, w, bias, residual = operands(case, "float32", seed=5)
    y = volconv.conv3d(
        torch.from_numpy(x),
        w,
        **case.api_kwargs(),
        bias=torch.from_numpy(bias),
        residual=torch.from_numpy(residual),
    )
    assert isinstance(y, torch.Tensor)
    assert_epilogue_close(y.numpy(), x, w, "float32", case, bias, None, residual)


def test_matches_torch_composition():
    """Against PyTorch's F.conv3d + bias, F.gelu(approximate='tanh'), + residual."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    case = PATH_CASES["igemm"]
    x, w, bias, residual = (a.astype(np.float64) for a in operands(case, "float32", seed=6))
    y = volconv.conv3d(x, w, **case.api_kwargs(), bias=bias, activation="gelu_tanh", residual=residual)
    xt, wt = torch.from_numpy(x).permute(0, 4, 1, 2, 3), torch.from_numpy(w).permute(0, 4, 1, 2, 3)
    ref = F.gelu(F.conv3d(xt, wt, torch.from_numpy(bias), padding=1), approximate="tanh")
    ref = ref.permute(0, 2, 3, 4, 1) + torch.from_numpy(residual)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- bad input

X = np.zeros((1, 3, 3, 3, 4), np.float32)
W = np.zeros((8, 1, 1, 1, 4), np.float32)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            dict(bias=np.zeros(5, np.float32)),
            ValueError,
            r"Expected bias of shape \(C_out,\) = \(8,\) but got \(5,\)",
        ),
        (
            dict(bias=np.zeros((1, 8), np.float32)),
            ValueError,
            r"bias to have 1 dimension \(C_out,\) but got 2",
        ),
        (dict(bias=np.zeros(8, np.int32)), ValueError, r"Expected the bias to have a floating-point dtype"),
        (
            dict(activation="tanh"),
            ValueError,
            r"activation to be None, 'relu', 'silu' or 'gelu_tanh' but got 'tanh'",
        ),
        (dict(activation=1), TypeError, r"activation to be None or a string but got int"),
        (
            dict(residual=np.zeros((1, 3, 3, 3, 7), np.float32)),
            ValueError,
            r"residual of the output's shape \(1,3,3,3,8\) but got \(1,3,3,3,7\)",
        ),
        (
            dict(residual=np.zeros((1, 3, 3, 3, 8), np.float16)),
            ValueError,
            r"residual dtype to be float32 \(the output's\) but got float16",
        ),
        (dict(residual=np.zeros((3, 3, 3, 8), np.float32)), ValueError, r"residual to have 5 dimensions"),
    ],
)
def test_bad_epilogue(kwargs, error, message):
    with pytest.raises(error, match=r"^\[conv3d\] .*" + message):
        volconv.conv3d(X, W, **kwargs)


def test_bad_bias_with_empty_batch():
    """Validated before any work, even when there is nothing to compute."""
    with pytest.raises(ValueError, match=r"Expected bias of shape"):
        volconv.conv3d(np.zeros((0, 3, 3, 3, 4), np.float32), W, bias=np.zeros(3, np.float32))


def test_gpu_applies_the_epilogue():
    """A GPU stream runs the Metal kernels' fused epilogue against the same
    float64 composition (the emulator checks every kernel family:
    tests/test_metal_emulated_epilogue.py)."""
    # Metal only: the CUDA backend runs depthwise problems without these.
    if sys.platform != "darwin" or not volconv.is_available(volconv.gpu):
        pytest.skip("no Metal GPU here")
    case = PATH_CASES["igemm"]
    x, w, bias, residual = operands(case, "float32", seed=3)
    y = volconv.conv3d(
        x, w, **case.api_kwargs(), stream=volconv.gpu, bias=bias, activation="silu", residual=residual
    )
    assert_epilogue_close(y, x, w, "float32", case, bias=bias, activation="silu", residual=residual)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nan_weight_in_padding_stays_nan(activation):
    """A NaN weight met only through the padding makes those outputs NaN
    (0 * NaN, as in torch); the epilogue keeps them NaN (relu included),
    and leaves every other output as torch's composition computes it."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    case = PATH_CASES["igemm"]
    x, w, bias, residual = (a.astype(np.float64) for a in operands(case, "float32", seed=7))
    # Channel 3's tap (0, 0, 0) is NaN: the first output row meets it only in
    # the padding, where the kernels skip the tap (the core's post-pass puts
    # the NaN back); every other channel stays finite.
    w[3, 0, 0, 0, :] = np.nan
    y = volconv.conv3d(x, w, **case.api_kwargs(), bias=bias, activation=activation, residual=residual)
    xt, wt = torch.from_numpy(x).permute(0, 4, 1, 2, 3), torch.from_numpy(w).permute(0, 4, 1, 2, 3)
    acts = {
        None: lambda v: v,
        "relu": F.relu,
        "silu": F.silu,
        "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
    }
    ref = acts[activation](F.conv3d(xt, wt, torch.from_numpy(bias), padding=1)).permute(0, 2, 3, 4, 1)
    ref = (ref + torch.from_numpy(residual)).numpy()
    assert np.isnan(ref[..., 3]).all() and not np.isnan(np.delete(ref, 3, axis=4)).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
