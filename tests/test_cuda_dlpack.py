"""Arrays in CUDA memory from DLPack producers other than torch and CuPy (JAX,
say: volconv/_cuda_dlpack.py), on a real NVIDIA GPU. The producer here is a
class that has nothing but the DLPack protocol, over torch CUDA tensors: it
is neither torch nor CuPy to volconv, and torch's own `__dlpack__(stream=)`
does the producer's side of the stream handshake. Results are compared with
the float64 reference. Skipped, with the reason, where there is no CUDA GPU."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_torch import torch_on_cuda
from dlpack_producer import Producer
from reference_training import assert_close, assert_conv3d_close, conv3d_grad_weight_reference

import volconv as vc

torch = torch_on_cuda()

torch.backends.cudnn.allow_tf32 = False
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _np(t):
    return t.detach().cpu().double().numpy()


def _check_conv(y, x, w, dtype, **kw):
    assert_conv3d_close(_np(y), _np(x), _np(w), dtype, **kw)


PAD1 = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [8, 1], ids=["depthwise", "dense"])  # volconv's kernels, cuDNN
def test_conv3d_of_a_dlpack_producer(dtype, groups):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 6, 7, 8, generator=g).to(DTYPES[dtype]).cuda()
    w = torch.randn(8, 3, 3, 3, 8 // groups, generator=g).to(DTYPES[dtype]).cuda()
    px, pw = Producer(x), Producer(w)
    y = vc.conv3d(px, pw, padding=1, groups=groups)
    # Not torch's kind (the producer's module has no from_dlpack): the
    # DLPack array itself, which any framework imports.
    assert not isinstance(y, torch.Tensor) and hasattr(y, "__dlpack__")
    assert y.__dlpack_device__() == (2, x.device.index)
    got = torch.from_dlpack(y)
    assert got.dtype == x.dtype and got.device == x.device and got.shape == (2, 5, 6, 7, 8)
    _check_conv(got, x, w, dtype, groups=groups, **PAD1)
    # Each producer was asked for its data on the stream the call ran on:
    # volconv's default stream of the GPU, as a cudaStream_t.
    handle = vc._core._gpu_stream_handle(vc.default_stream(vc.Device(vc.gpu, x.device.index)))
    assert px.streams == [handle] and pw.streams == [handle]


def test_a_dlpack_weight_beside_a_torch_input_is_ready_on_the_tensors_stream():
    # The call runs on the torch input's current stream (a side stream
    # here), so that is the stream the weight's producer is asked for.
    x = torch.randn(1, 4, 5, 6, 8, device="cuda")
    pw = Producer(torch.randn(8, 3, 3, 3, 1, device="cuda"))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = vc.conv3d(x, pw, padding=1, groups=8)
    assert isinstance(y, torch.Tensor)  # the first operand's kind
    assert pw.streams == [side.cuda_stream]
    side.synchronize()
    _check_conv(y, x, pw.t, "float32", groups=8, **PAD1)


def test_weight_gradient_of_a_dlpack_producer():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 6, 7, 8, 16, generator=g).cuda()
    gy = torch.randn(1, 6, 7, 8, 16, generator=g).cuda()
    gw = vc.conv3d_grad_weight(Producer(x), Producer(gy), (16, 3, 3, 3, 1), padding=1, groups=16)
    kw = dict(groups=16, **PAD1)
    scale = conv3d_grad_weight_reference(np.abs(_np(x)), np.abs(_np(gy)), (16, 3, 3, 3, 1), **kw)
    ref = conv3d_grad_weight_reference(_np(x), _np(gy), (16, 3, 3, 3, 1), **kw)
    assert_close(_np(torch.from_dlpack(gw)), ref, scale, "float32")


def test_the_call_is_ordered_after_the_producers_work():
    # The input is written on a side stream behind a queued sleep. The
    # producer (torch's __dlpack__) makes volconv's stream wait for it, so
    # the conv reads the written values, not the zeros before them; and the
    # call waits for its stream before handing the result out, so reading
    # the result at once (before anything synchronises) sees all of it.
    x = torch.zeros(1, 4, 5, 6, 8, device="cuda")
    w = torch.randn(8, 3, 3, 3, 1, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # about 25 ms on an H200
        x.copy_(torch.randn(1, 4, 5, 6, 8, device="cuda"))
        y = vc.conv3d(Producer(x), w, padding=1, groups=8)
    got = torch.from_dlpack(y).cpu()  # on the default stream, which waits for nothing
    side.synchronize()  # for the reference's own read of x
    _check_conv(got, x, w, "float32", groups=8, **PAD1)


def test_the_result_outlives_the_inputs():
    x = torch.randn(1, 4, 5, 6, 8, device="cuda")
    w = torch.randn(8, 3, 3, 3, 1, device="cuda")
    xc, wc = x.cpu(), w.cpu()
    y = vc.conv3d(Producer(x), Producer(w), padding=1, groups=8)
    del x, w
    torch.cuda.empty_cache()
    torch.randn(1 << 20, device="cuda")  # reuses the freed memory
    _check_conv(torch.from_dlpack(y), xc, wc, "float32", groups=8, **PAD1)


def test_dlpack_producers_are_refused_clearly():
    ints = Producer(torch.zeros(1, 4, 5, 6, 8, dtype=torch.int32, device="cuda"))
    w = torch.randn(8, 3, 3, 3, 1, device="cuda")
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected the input to have a floating-point dtype"):
        vc.conv3d(ints, w, groups=8)
    x = Producer(torch.randn(1, 4, 5, 6, 8, device="cuda"))
    with pytest.raises(
        ValueError, match=r"\[conv3d\] The input is on cuda:0, so the stream must be a GPU stream"
    ):
        vc.conv3d(x, w, groups=8, stream=vc.cpu)
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected the weight to have 5 dimensions"):
        vc.conv3d(x, Producer(w[0]), groups=8)
