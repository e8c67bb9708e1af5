"""Every invalid call raises ValueError or TypeError before any work, with a
message that names the op and says what was expected and what was got."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import volconv as vc

X = np.zeros((1, 5, 5, 5, 4), np.float32)
W = np.zeros((8, 3, 3, 3, 4), np.float32)


def raises(exc, *fragments):
    """Context manager: `exc` whose message starts with [op] and holds each fragment."""

    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            handled = self.ctx.__exit__(*args)
            message = str(self.info.value)
            assert message.startswith("["), message
            for f in fragments:
                assert f in message, f"{f!r} not in {message!r}"
            return handled

    return _Check()


@pytest.mark.parametrize(
    "x,w,fragment",
    [
        (X[0], W, "input to have 5 dimensions"),
        (X[None], W, "input to have 5 dimensions"),
        (X, W[0], "weight to have 5 dimensions"),
        (np.float32(1.0), W, "input to have 5 dimensions"),
    ],
)
def test_wrong_ndim(x, w, fragment):
    with raises(ValueError, "[conv3d]", fragment, "got"):
        vc.conv3d(x, w)


def test_channel_mismatch_names_both_shapes():
    with raises(ValueError, "[conv3d]", "input channels", "(1,5,5,5,4)", "(8,3,3,3,3)"):
        vc.conv3d(X, np.zeros((8, 3, 3, 3, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64])
def test_non_floating_dtypes(dtype):
    with raises(ValueError, "[conv3d]", "floating-point", np.dtype(dtype).name):
        vc.conv3d(X.astype(dtype), W)
    with raises(ValueError, "[conv3d]", "weight", np.dtype(dtype).name):
        vc.conv3d(X, W.astype(dtype))


def test_non_floating_torch_and_mlx():
    torch = pytest.importorskip("torch")
    with raises(ValueError, "[conv3d]", "int64"):
        vc.conv3d(torch.zeros((1, 5, 5, 5, 4), dtype=torch.int64), W)
    mx = pytest.importorskip("mlx.core")
    with raises(ValueError, "[conv3d]", "int32"):
        vc.conv3d(mx.zeros((1, 5, 5, 5, 4), dtype=mx.int32), W)


@pytest.mark.parametrize("stride", [0, -1, (1, 0, 1), (2, 2, -3)])
def test_non_positive_stride(stride):
    with raises(ValueError, "[conv3d]", "Stride", "positive"):
        vc.conv3d(X, W, stride=stride)


@pytest.mark.parametrize("dilation", [0, -2, (1, 1, 0)])
def test_non_positive_dilation(dilation):
    with raises(ValueError, "[conv3d]", "dilation", "positive"):
        vc.conv3d(X, W, dilation=dilation)


@pytest.mark.parametrize("padding", [-1, (0, -1, 0), ((0, 0, 0), (0, 0, -1))])
def test_negative_padding(padding):
    with raises(ValueError, "[conv3d]", "Padding", "non-negative"):
        vc.conv3d(X, W, padding=padding)


@pytest.mark.parametrize("groups", [0, -1])
def test_groups_below_one(groups):
    with raises(ValueError, "[conv3d]", "Groups", str(groups)):
        vc.conv3d(X, W, groups=groups)


def test_groups_not_dividing_channels():
    with raises(ValueError, "[conv3d]", "groups", "divide", "3"):
        vc.conv3d(X, np.zeros((8, 3, 3, 3, 1), np.float32), groups=3)
    with raises(ValueError, "[conv3d]", "groups", "divide", "output channels"):
        vc.conv3d(X, np.zeros((6, 3, 3, 3, 1), np.float32), groups=4)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(stride=(1, 2)), "stride"),
        (dict(dilation=(1, 1, 1, 1)), "dilation"),
        (dict(padding=(1, 1)), "padding"),
        (dict(padding=((1, 1), (1, 1, 1))), "padding low"),
        (dict(padding=()), "padding"),
    ],
)
def test_tuples_of_the_wrong_length(kwargs, name):
    with raises(ValueError, "[conv3d]", name, "tuple of 3"):
        vc.conv3d(X, W, **kwargs)


@pytest.mark.parametrize(
    "kwargs,exc",
    [
        (dict(stride=1.5), TypeError),
        (dict(stride="2"), TypeError),
        (dict(groups=1.0), TypeError),
        (dict(groups=True), TypeError),
        (dict(padding=(1, None, 1)), TypeError),
        (dict(padding="full"), ValueError),
        (dict(stride=2**70), ValueError),
    ],
)
def test_parameters_of_the_wrong_type(kwargs, exc):
    with raises(exc, "[conv3d]"):
        vc.conv3d(X, W, **kwargs)


def test_same_padding_needs_stride_one():
    with raises(ValueError, "[conv3d]", "same", "stride 1"):
        vc.conv3d(X, W, padding="same", stride=2)


def test_kernel_larger_than_padded_input():
    with raises(ValueError, "[conv3d]", "padding", "axis 1", "(8,7,3,3,4)"):
        vc.conv3d(X, np.zeros((8, 7, 3, 3, 4), np.float32))
    vc.conv3d(X, np.zeros((8, 7, 3, 3, 4), np.float32), padding=(1, 0, 0))  # fits once padded
    with raises(ValueError, "[conv3d]", "dilat"):
        vc.conv3d(X, W, dilation=3)


def test_empty_kernel_or_channels():
    with raises(ValueError, "[conv3d]", "kernel spatial sizes"):
        vc.conv3d(X, np.zeros((8, 0, 3, 3, 4), np.float32))
    with raises(ValueError, "[conv3d]", "channel"):
        vc.conv3d(np.zeros((1, 5, 5, 5, 0), np.float32), np.zeros((8, 3, 3, 3, 0), np.float32))


@pytest.mark.parametrize("bad", [[[1.0]], "abc", 3.0, None, {"a": 1}, object()])
def test_non_array_arguments(bad):
    with raises(TypeError, "[conv3d]", "array", type(bad).__name__):
        vc.conv3d(bad, W)
    with raises(TypeError, "[conv3d]", "weight", type(bad).__name__):
        vc.conv3d(X, bad)


@pytest.mark.parametrize("s", ["cpu", 0, object(), vc.Device(vc.cpu, 3)])
def test_unknown_streams_and_devices(s):
    exc = ValueError if isinstance(s, vc.Device) else TypeError
    with raises(exc):
        vc.conv3d(X, W, stream=s)


def test_gpu_is_unavailable_here_and_says_why():
    if vc.is_available(vc.gpu):
        pytest.skip("this machine has a usable Metal GPU")
    for s in (vc.gpu, vc.Device(vc.gpu)):
        with raises(ValueError, "not available", "Metal"):
            vc.conv3d(X, W, stream=s)
    mx = pytest.importorskip("mlx.core")
    with raises(ValueError, "not available"):
        vc.conv3d(X, W, stream=mx.gpu)


def test_sizes_whose_product_overflows_are_refused_not_wrapped():
    base = np.zeros(1, np.float32)
    huge = as_strided(base, shape=(2**19, 2**19, 2**19, 1, 1), strides=(0,) * 5)
    with raises(ValueError, "[conv3d]", "too many elements"):
        vc.conv3d(huge, np.zeros((1, 1, 1, 1, 1), np.float32))
    with raises(ValueError, "[conv3d]"):
        vc.conv3d(X, W, padding=2**62)


def test_errors_come_before_any_work_and_leave_inputs_alone():
    x = np.random.default_rng(0).standard_normal(X.shape).astype(np.float32)
    before = x.copy()
    with pytest.raises(ValueError):
        vc.conv3d(x, W, groups=3)
    np.testing.assert_array_equal(x, before)
