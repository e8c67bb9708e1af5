"""Weights packed once (vc.pack_conv3d_weights) give exactly the result of
the plain weight on every CPU path and dtype, checked against the float64
reference too; the handle holds its own copy; calls it was not packed for
are refused with a message naming conv3d."""

import numpy as np
import pytest

import volconv
from volconv import _core

from conftest import FLOAT_DTYPES, cast
from reference import assert_conv_close

# (input shape, weight shape, groups, padding, stride): depthwise, few-cin,
# fold-w, small-cin, igemm, grouped + strided, pointwise.
SHAPES = [
    ((1, 4, 5, 6, 4), (4, 3, 3, 3, 1), 4, 1, 1),
    ((1, 4, 5, 6, 1), (8, 3, 3, 3, 1), 1, 1, 1),
    ((1, 4, 5, 9, 5), (8, 3, 3, 5, 5), 1, 2, 1),
    ((1, 4, 5, 6, 4), (8, 3, 3, 3, 2), 2, 1, 1),
    ((2, 4, 5, 6, 8), (16, 3, 3, 3, 8), 1, 1, 1),
    ((1, 5, 6, 9, 12), (10, 2, 3, 3, 6), 2, 1, 2),
    ((2, 3, 3, 5, 24), (40, 1, 1, 1, 24), 1, 0, 1),
]
IDS = ["depthwise", "few-cin", "fold-w", "small-cin", "igemm", "grouped-strided", "pointwise"]


def operands(shape, dtype, seed=11):
    x_shape, w_shape, *_ = shape
    rng = np.random.default_rng(seed)
    return cast(rng.uniform(-1, 1, x_shape), dtype), cast(rng.uniform(-1, 1, w_shape), dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_packed_matches_plain_weight(shape, dtype):
    _, _, groups, padding, stride = shape
    x, w = operands(shape, dtype)
    kw = dict(padding=padding, groups=groups, stride=stride)
    packed = volconv.pack_conv3d_weights(w, **kw)
    plain = np.asarray(volconv.conv3d(x, w, **kw))
    for _ in range(2):  # the handle is reusable
        y = np.asarray(volconv.conv3d(x, packed, **kw))
        np.testing.assert_array_equal(y, plain)
    p = (padding,) * 3
    assert_conv_close(y, x, w, dtype, pad_lo=p, pad_hi=p, groups=groups, stride=(stride,) * 3)


def test_held_panel_is_used_and_sizes_vary():
    """igemm-family calls with the handle pack nothing themselves (a plain
    call packs once); inputs of other N, D, H, W reuse the same handle."""
    x, w = operands(SHAPES[4], "float32")
    packed = volconv.pack_conv3d_weights(w, padding=1)
    assert packed._core.packed_bytes > 0
    before = _core._cpu_call_packing_count()
    volconv.conv3d(x, w, padding=1)
    assert _core._cpu_call_packing_count() == before + 1
    for shape in [(2, 4, 5, 6, 8), (1, 7, 3, 11, 8), (3, 1, 1, 1, 8)]:
        xi = np.random.default_rng(1).uniform(-1, 1, shape).astype(np.float32)
        y = np.asarray(volconv.conv3d(xi, packed, padding=1))
        np.testing.assert_array_equal(y, np.asarray(volconv.conv3d(xi, w, padding=1)))
    assert _core._cpu_call_packing_count() == before + 1 + 3  # only the three plain calls packed


def test_epilogue_per_call_and_mixed_input_dtype():
    x, w = operands(SHAPES[4], "float32")
    bias = np.linspace(-1, 1, 16).astype(np.float32)
    packed = volconv.pack_conv3d_weights(w, padding=1)
    y = volconv.conv3d(x, packed, padding=1, bias=bias, activation="relu")
    np.testing.assert_array_equal(y, volconv.conv3d(x, w, padding=1, bias=bias, activation="relu"))
    # bf16 input with f32 weights: packed for that input dtype.
    xb = cast(np.asarray(x, np.float64), "bfloat16")
    pb = volconv.pack_conv3d_weights(w, padding=1, input_dtype="bfloat16")
    assert pb.input_dtype == "bfloat16" and pb.dtype == "float32"
    np.testing.assert_array_equal(volconv.conv3d(xb, pb, padding=1), volconv.conv3d(xb, w, padding=1))


def test_handle_holds_a_copy():
    x, w = operands(SHAPES[4], "float32")
    packed = volconv.pack_conv3d_weights(w, padding=1)
    expected = np.asarray(volconv.conv3d(x, w, padding=1))
    w[...] = 0.0  # the caller changes its array afterwards
    del w
    np.testing.assert_array_equal(volconv.conv3d(x, packed, padding=1), expected)


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 5, 6, 7, 9, generator=g)
    w = torch.rand(12, 3, 3, 3, 9, generator=g)
    packed = volconv.pack_conv3d_weights(w, padding=1)
    y = volconv.conv3d(x, packed, padding=1)
    assert isinstance(y, torch.Tensor)
    assert torch.equal(y, volconv.conv3d(x, w, padding=1))


@pytest.mark.parametrize(
    "call_kwargs, words",
    [
        (dict(padding=2), "packed for stride (1,1,1), padding (1,1,1)"),
        (dict(padding=1, stride=2), "the call has stride (2,2,2)"),
        (dict(padding=1, dilation=(1, 2, 1)), "dilation (1,2,1)"),
        (dict(padding=1, padding_mode="reflect"), "padding modes (reflect,reflect,reflect)"),
    ],
)
def test_refuses_other_params(call_kwargs, words):
    x, w = operands(SHAPES[4], "float32")
    packed = volconv.pack_conv3d_weights(w, padding=1)
    with pytest.raises(ValueError, match=r"^\[conv3d\] The weights were packed for") as e:
        volconv.conv3d(x, packed, **call_kwargs)
    assert words in str(e.value)


def test_refuses_other_input_dtype_and_groups():
    x, w = operands(SHAPES[3], "float32")
    packed = volconv.pack_conv3d_weights(w, padding=1, groups=2)
    with pytest.raises(
        ValueError, match=r"\[conv3d\] The weights were packed for a float32 input but the input is float64"
    ):
        volconv.conv3d(x.astype(np.float64), packed, padding=1, groups=2)
    with pytest.raises(ValueError, match=r"groups 2, .* but the call has .*groups 1, "):
        volconv.conv3d(np.ascontiguousarray(x[..., :2]), packed, padding=1)  # shapes valid for groups 1


def test_refuses_another_kernel_set():
    isas = _core._cpu_supported_isas()
    if len(isas) < 2:
        pytest.skip("one CPU kernel set only")
    x, w = operands(SHAPES[4], "float32")
    packed = volconv.pack_conv3d_weights(w, padding=1)
    try:
        _core._cpu_force_isa(isas[-1])
        with pytest.raises(
            ValueError, match=rf"packed for the CPU kernel set '{isas[0]}' but '{isas[-1]}' is active"
        ):
            volconv.conv3d(x, packed, padding=1)
    finally:
        _core._cpu_force_isa("")


@pytest.mark.parametrize(
    "weight_shape, kwargs, message",
    [
        ((8, 3, 3, 4), {}, r"\[pack_conv3d_weights\] Expected the weight to have 5 dimensions"),
        (
            (8, 3, 3, 3, 4),
            dict(groups=3),
            r"\[pack_conv3d_weights\] Expected groups >= 1 dividing the weight's C_out 8",
        ),
        ((8, 3, 3, 3, 4), dict(dilation=0), r"\[pack_conv3d_weights\]"),
        ((8, 3, 3, 3, 4), dict(input_dtype="int8"), r"\[pack_conv3d_weights\] Expected input_dtype"),
    ],
)
def test_pack_refuses_bad_arguments(weight_shape, kwargs, message):
    w = np.zeros(weight_shape, np.float32)
    with pytest.raises(ValueError, match=message):
        volconv.pack_conv3d_weights(w, **kwargs)
