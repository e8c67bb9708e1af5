"""Inputs a user meets in practice that used to get another library's message
(nanobind's, torch's) or a misleading one: each now works, or gets a
`[op]` message that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import volconv as vc

from reference import assert_conv_close

RNG = np.random.default_rng(3)
X = RNG.standard_normal((1, 4, 5, 6, 3)).astype(np.float32)
W = RNG.standard_normal((2, 3, 3, 3, 3)).astype(np.float32)
PAD1 = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_big_endian_floats_are_read_by_value(dtype):
    big = np.dtype(dtype).newbyteorder(">")
    x, w = X.astype(big), W.astype(big)
    y = vc.conv3d(x, w, padding=1)
    assert y.dtype == np.dtype(dtype)  # native order out
    assert_conv_close(y, X.astype(dtype), W.astype(dtype), dtype, **PAD1)
    assert x.dtype == big and np.array_equal(
        x.astype(dtype), X.astype(dtype)
    )  # the caller's array is untouched


@pytest.mark.parametrize(
    "fields",
    [
        [("v", "<f4"), ("tag", "<i2")],  # 6-byte records: strides not a multiple of 4
        [("tag", "<i1"), ("v", "<f4")],  # field at offset 1
        [("v", "<f4"), ("u", "<f4")],  # 8-byte records: plain strides
    ],
    ids=["odd_stride", "odd_offset", "even_stride"],
)
def test_structured_field_views_work(fields):
    records = np.zeros(X.shape, dtype=fields)
    records["v"] = X
    y = vc.conv3d(records["v"], W, padding=1)
    assert_conv_close(y, X, W, "float32", **PAD1)


@pytest.mark.parametrize("n", [2**31, -(2**31) - 1, 2**64])
def test_set_num_threads_out_of_c_int_range(n):
    with pytest.raises(ValueError, match=r"^\[set_num_threads\] Expected n to be between"):
        vc.set_num_threads(n)


@pytest.mark.parametrize("n", [True, 2.0, "4", None])
def test_set_num_threads_wrong_type(n):
    with pytest.raises(TypeError, match=r"^\[set_num_threads\] Expected n to be an int"):
        vc.set_num_threads(n)


def test_set_num_threads_accepts_numpy_ints():
    before = vc.get_num_threads()
    try:
        vc.set_num_threads(np.int64(2))
        assert vc.get_num_threads() == 2
    finally:
        vc.set_num_threads(before)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(padding=-(2**63)), "padding to be at least 0 but got -9223372036854775808"),
        (dict(padding=((0, 0, -(2**64)), (0, 0, 0))), "padding low to be at least 0"),
        (dict(stride=-(2**63)), "stride to be at least 1"),
        (dict(dilation=(1, -(2**70), 1)), "dilation to be at least 1"),
        (dict(groups=-(2**63)), "groups to be at least 1"),
        (dict(padding=2**63), "padding to be between"),
    ],
)
def test_values_outside_64_bits_say_what_is_wrong(kwargs, fragment):
    with pytest.raises(ValueError, match=r"^\[conv3d\] ") as info:
        vc.conv3d(X, W, **kwargs)
    assert fragment in str(info.value)


def test_output_too_large_for_memory_names_the_op_and_bytes():
    # A zero-strided 2**48-element input (no memory) whose 8-channel output
    # needs 2**53 bytes, more than any 64-bit address space holds, whatever
    # the overcommit policy; validation allows it.
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1, 2**16, 2**16, 2**16, 1), (0,) * 5)
    with pytest.raises(MemoryError) as info:
        vc.conv3d(x, np.ones((8, 1, 1, 1, 1), np.float32))
    assert str(info.value).startswith("[conv3d]")
    assert f"{2**53} bytes" in str(info.value)


def test_torch_negative_bit_view_is_read_by_value():
    torch = pytest.importorskip("torch")
    x = torch._neg_view(torch.from_numpy(X))
    assert x.is_neg()
    y = vc.conv3d(x, torch.from_numpy(W), padding=1)
    assert_conv_close(y.numpy(), -X, W, "float32", **PAD1)


@pytest.mark.parametrize("which", ["input", "weight"])
def test_torch_sparse_tensor_gets_our_message(which):
    torch = pytest.importorskip("torch")
    x, w = torch.from_numpy(X), torch.from_numpy(W)
    args = (x.to_sparse(), w) if which == "input" else (x, w.to_sparse())
    with pytest.raises(ValueError, match=rf"^\[conv3d\] Expected the {which} to be a dense .* sparse_coo"):
        vc.conv3d(*args)


HINT = "look channels-first"


@pytest.mark.parametrize(
    "x_shape,w_shape,groups",
    [
        ((1, 3, 4, 5, 6), (2, 3, 3, 3, 3), 1),  # NCDHW input, our weight layout
        ((1, 4, 4, 5, 6), (4, 3, 3, 3, 2), 2),  # NCDHW input, grouped
        ((1, 3, 4, 5, 6), (2, 3, 2, 2, 2), 1),  # NCDHW input, torch weight (C_out, C_in, k, k, k)
        ((1, 4, 5, 6, 3), (2, 3, 3, 3, 5), 1),  # channels-last input, torch weight
    ],
)
def test_channel_mismatch_hints_at_channels_last_when_shapes_look_ncdhw(x_shape, w_shape, groups):
    with pytest.raises(ValueError, match=r"^\[conv3d\] Expect the input channels") as info:
        vc.conv3d(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32), groups=groups)
    assert HINT in str(info.value)


@pytest.mark.parametrize(
    "x_shape,w_shape,fragment",
    [
        ((1, 4, 5, 6, 3), (2, 2, 2, 2, 5), "input channels"),  # no channels-first reading agrees
        ((1, 3, 2, 2, 3), (2, 3, 3, 3, 3), "kernel"),  # channels agree; the error is the kernel's size
    ],
)
def test_errors_without_an_ncdhw_reading_have_no_hint(x_shape, w_shape, fragment):
    with pytest.raises(ValueError, match=r"^\[conv3d\]") as info:
        vc.conv3d(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32))
    assert fragment in str(info.value).lower() and HINT not in str(info.value)


def test_device_functions_accept_mlx_objects():
    mx = pytest.importorskip("mlx.core")
    assert vc.new_stream(mx.cpu).device == vc.Device(vc.cpu)
    assert vc.new_stream(mx.Device(mx.cpu)).device == vc.Device(vc.cpu)
    assert vc.default_stream(mx.cpu) == vc.default_stream(vc.cpu)
    assert vc.is_available(mx.gpu) == vc.is_available(vc.gpu)
    assert vc.is_available(mx.cpu) is True
    assert vc.unavailable_reason(mx.gpu) == vc.unavailable_reason(vc.gpu)
    # A stream names a queue, not a device: refused where a device is meant.
    with pytest.raises(TypeError, match=r"^\[new_stream\] Expected a volconv.Device"):
        vc.new_stream(mx.default_stream(mx.cpu))
