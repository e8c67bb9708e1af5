"""Array kinds in and out, strided views, and the promise that the caller's
arrays are never modified."""

import threading

import numpy as np
import pytest

import volconv as vc

from conftest import cast
from reference import assert_conv_close

RNG = np.random.default_rng(11)
X = RNG.standard_normal((2, 5, 6, 7, 6)).astype(np.float32)
W = RNG.standard_normal((4, 3, 3, 3, 3)).astype(np.float32)
PARAMS = dict(stride=(1, 2, 1), padding=1, groups=2)
REF = dict(stride=(1, 2, 1), pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=2)


def test_numpy_in_numpy_out_owned_and_aligned():
    y = vc.conv3d(X, W, **PARAMS)
    assert type(y) is np.ndarray and y.flags.c_contiguous and y.flags.writeable
    assert y.ctypes.data % 4096 == 0
    assert_conv_close(y, X, W, "float32", **REF)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_torch_in_torch_out(dtype):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(X).to(getattr(torch, dtype))
    w = torch.from_numpy(W).to(getattr(torch, dtype))
    y = vc.conv3d(x, w, **PARAMS)
    assert isinstance(y, torch.Tensor) and y.dtype == x.dtype
    assert_conv_close(y.double().numpy(), x.double().numpy(), w.double().numpy(), dtype, **REF)


def test_torch_tensor_requiring_grad_and_non_contiguous():
    torch = pytest.importorskip("torch")
    base = torch.from_numpy(np.ascontiguousarray(X.transpose(0, 4, 1, 2, 3))).requires_grad_()
    x = base.permute(0, 2, 3, 4, 1)  # NCDHW storage seen as NDHWC: channels_last-like strides
    assert not x.is_contiguous()
    y = vc.conv3d(x, torch.from_numpy(W), **PARAMS)
    assert_conv_close(y.numpy(), X, W, "float32", **REF)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_mlx_in_mlx_out(dtype):
    mx = pytest.importorskip("mlx.core")
    x = mx.array(X).astype(getattr(mx, dtype))
    w = mx.array(W).astype(getattr(mx, dtype))
    y = vc.conv3d(x, w, **PARAMS)
    assert isinstance(y, mx.array) and y.dtype == x.dtype
    f32 = lambda a: np.asarray(a.astype(mx.float32))
    assert_conv_close(f32(y), f32(x), f32(w), dtype, **REF)


@pytest.mark.parametrize(
    "view",
    [lambda a: a[:, :, ::2], lambda a: a.transpose(0, 3, 2, 1, 4), lambda a: (a * 2)[1:]],
    ids=["strided", "transposed", "lazy_slice"],
)
def test_mlx_views_and_lazy_arrays(view):
    mx = pytest.importorskip("mlx.core")
    xm = view(mx.array(X))
    y = vc.conv3d(xm, mx.array(W), **PARAMS)
    x = np.array(xm)  # what MLX itself says the view holds
    assert_conv_close(np.array(y), x, W, "float32", **REF)


def test_dlpack_and_buffer_protocol_objects():
    class OnlyDLPack:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kwargs):
            return self.a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    y = vc.conv3d(OnlyDLPack(X), OnlyDLPack(W), **PARAMS)
    assert type(y) is np.ndarray
    assert_conv_close(y, X, W, "float32", **REF)
    y = vc.conv3d(memoryview(X), memoryview(W), **PARAMS)
    assert_conv_close(y, X, W, "float32", **REF)


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::-1],  # negative stride
        lambda a: a[..., ::2],  # strided channels
        lambda a: np.asfortranarray(a),
        lambda a: a.transpose(0, 3, 2, 1, 4),  # permuted spatial axes
        lambda a: np.broadcast_to(a[:1], (3,) + a.shape[1:]),  # zero batch stride
    ],
    ids=["reversed", "every_other_channel", "fortran", "transposed", "broadcast"],
)
def test_non_contiguous_inputs_equal_their_contiguous_copy(view):
    x = view(RNG.standard_normal((2, 5, 6, 7, 8)).astype(np.float32))
    c_in = x.shape[4]
    w = RNG.standard_normal((4, 3, 2, 3, c_in)).astype(np.float32)
    wv = w[:, ::-1, :, ::-1]  # and a strided weight
    y = vc.conv3d(x, wv, padding=1)
    np.testing.assert_array_equal(y, vc.conv3d(np.ascontiguousarray(x), np.ascontiguousarray(wv), padding=1))
    assert_conv_close(y, x, wv, "float32", pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_inputs_are_never_modified(dtype):
    x, w = cast(X, dtype), cast(W, dtype)
    xc, wc = x.copy(), w.copy()
    x.flags.writeable = False  # read-only arrays are accepted too
    vc.conv3d(x, w, **PARAMS)
    np.testing.assert_array_equal(x.view(np.uint8), xc.view(np.uint8))
    np.testing.assert_array_equal(w.view(np.uint8), wc.view(np.uint8))


def test_calls_from_several_threads_agree():
    xs = [RNG.standard_normal((1, 6, 6, 6, 6)).astype(np.float32) for _ in range(6)]
    expected = [vc.conv3d(x, W, **PARAMS) for x in xs]
    results = [None] * len(xs)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = vc.conv3d(xs[i], W, **PARAMS)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for x, r, e in zip(xs, results, expected):
        assert_conv_close(e, x, W, "float32", **REF)
        np.testing.assert_array_equal(r, e)


def test_gil_is_released_during_the_kernel():
    # A Python thread keeps counting while a long conv runs in another.
    x = RNG.standard_normal((1, 24, 24, 24, 16)).astype(np.float32)
    w = RNG.standard_normal((16, 3, 3, 3, 16)).astype(np.float32)
    done = threading.Event()
    ticks = []

    def count():
        while not done.is_set():
            ticks.append(1)

    t = threading.Thread(target=count)
    t.start()
    try:
        for _ in range(3):
            vc.conv3d(x, w, padding=1)
    finally:
        done.set()
        t.join()
    assert len(ticks) > 100
