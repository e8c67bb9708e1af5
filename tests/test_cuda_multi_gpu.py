"""`vc.Device(vc.gpu, i)` on a machine with two NVIDIA GPUs: arrays on the
second GPU run there (torch tensors, CuPy arrays, NumPy arrays given a
stream of that GPU), whatever device is current; calls alternate between
the GPUs (cuDNN's handles, the scratch pools and the kernels' attributes are
per device); streams of the second GPU order work there; operands on two
GPUs, or a stream of the other GPU, are refused by name. Which GPU ran a
kernel is read from torch's profiler (CUPTI sees every kernel of the
process, volconv's too). Results against the float64 reference. Skipped
where there are fewer than two CUDA GPUs."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_torch import torch_on_cuda
from dlpack_producer import Producer
from reference_training import (
    assert_close,
    assert_conv3d_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
)

import volconv as vc

torch = torch_on_cuda()
if torch.cuda.device_count() < 2:
    pytest.skip(
        f"one CUDA GPU here ({torch.cuda.get_device_name(0)}): these tests need two", allow_module_level=True
    )

torch.backends.cudnn.allow_tf32 = False
PAD1 = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


@pytest.fixture(autouse=True)
def _current_device_is_0():
    # The premise of the cases: GPU 0 is current (JAX's start-up, say, may
    # leave GPU 1 current in this thread).
    torch.cuda.set_device(0)


def _np(t):
    return t.detach().cpu().double().numpy()


def _operands(device, groups, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 6, 7, 16, generator=g).to(dtype)
    w = torch.randn(16, 3, 3, 3, 16 // groups, generator=g).to(dtype)
    gy = torch.randn(2, 5, 6, 7, 16, generator=g).to(dtype)
    return x.to(device), w.to(device), gy.to(device)


def _kernel_devices(fn):
    """fn's result and the devices its volconv kernels ran on (torch's profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        result = fn()
        torch.cuda.synchronize(0), torch.cuda.synchronize(1)
    devices = {e.device_index for e in prof.events() if "volconv" in e.name and e.device_type.name == "CUDA"}
    return result, devices


def _check_forward(y, x, w, groups, dtype="float32"):
    assert_conv3d_close(_np(y), _np(x), _np(w), dtype, groups=groups, **PAD1)


@pytest.mark.parametrize("groups", [16, 1], ids=["depthwise", "dense"])  # volconv's kernels, cuDNN
def test_torch_tensors_on_the_second_gpu_run_there(groups):
    assert torch.cuda.current_device() == 0  # the current device is not the operands'
    x, w, gy = _operands("cuda:1", groups)
    y, devices = _kernel_devices(lambda: vc.conv3d(x, w, padding=1, groups=groups))
    assert y.device == torch.device("cuda:1")
    _check_forward(y, x, w, groups)
    if groups == 16:  # cuDNN's kernels are not volconv's: only depthwise names them
        assert devices == {1}
    kw = dict(groups=groups, **PAD1)
    gx = vc.conv3d_grad_input(gy, w, x.shape, padding=1, groups=groups)
    scale = conv3d_grad_input_reference(np.abs(_np(gy)), np.abs(_np(w)), x.shape, **kw)
    assert_close(_np(gx), conv3d_grad_input_reference(_np(gy), _np(w), x.shape, **kw), scale, "float32")
    gw = vc.conv3d_grad_weight(x, gy, w.shape, padding=1, groups=groups)
    assert gx.device == gw.device == torch.device("cuda:1")
    scale = conv3d_grad_weight_reference(np.abs(_np(x)), np.abs(_np(gy)), w.shape, **kw)
    assert_close(_np(gw), conv3d_grad_weight_reference(_np(x), _np(gy), w.shape, **kw), scale, "float32")
    assert torch.cuda.current_device() == 0  # left as it was


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_calls_alternate_between_the_gpus(dtype):
    # Each GPU's first call makes its cuDNN handle, scratch pool and plans;
    # later calls on the other GPU must not use them. Each call runs on a
    # volconv stream of its GPU (not the null stream, which every device
    # has, so a handle of the wrong device is seen).
    name = str(dtype).replace("torch.", "")
    streams = {i: vc.new_stream(vc.Device(vc.gpu, i)) for i in (0, 1)}
    for i in [0, 1, 0, 1]:
        for groups in (16, 1):
            x, w, _ = _operands(f"cuda:{i}", groups, dtype, seed=groups)
            y = vc.conv3d(x, w, padding=1, groups=groups, stream=streams[i])
            assert y.device == torch.device(f"cuda:{i}")
            _check_forward(y, x, w, groups, name)


def test_numpy_arrays_with_a_stream_of_the_second_gpu():
    x, w, _ = _operands("cpu", 16)
    stream = vc.new_stream(vc.Device(vc.gpu, 1))
    assert stream.device == vc.Device(vc.gpu, 1)
    y, devices = _kernel_devices(lambda: vc.conv3d(x.numpy(), w.numpy(), padding=1, groups=16, stream=stream))
    assert isinstance(y, np.ndarray) and devices == {1}
    _check_forward(torch.from_numpy(y), x, w, 16)
    y, devices = _kernel_devices(
        lambda: vc.conv3d(x.numpy(), w.numpy(), padding=1, groups=16, stream=vc.Device(vc.gpu, 1))
    )
    assert devices == {1}
    _check_forward(torch.from_numpy(y), x, w, 16)


def test_work_on_the_second_gpu_is_ordered_on_torchs_stream_there():
    # x is written on a side stream of cuda:1 (torch's current stream there)
    # behind a queued sleep. Without a stream, the conv runs on that side
    # stream; a given volconv stream of GPU 1 first waits for it, and the
    # side stream then waits for the conv. Reading y on the side stream
    # sees the result either way.
    with torch.cuda.device(1):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        x = torch.zeros(1, 4, 5, 6, 16, device="cuda:1")
        w = torch.randn(16, 3, 3, 3, 1, device="cuda:1")
        for stream in [None, vc.new_stream(vc.Device(vc.gpu, 1))]:
            with torch.cuda.stream(side):
                x.zero_()
                torch.cuda._sleep(50_000_000)  # about 25 ms on an H200
                x.copy_(torch.randn(1, 4, 5, 6, 16, device="cuda:1"))
                y = vc.conv3d(x, w, padding=1, groups=16, stream=stream)
                got = y.cpu()
            _check_forward(got, x, w, 16)


def test_cupy_arrays_on_the_second_gpu():
    cupy = pytest.importorskip("cupy")
    x, w, _ = _operands("cpu", 16)
    with cupy.cuda.Device(1):
        cx, cw = cupy.asarray(x.numpy()), cupy.asarray(w.numpy())
    y, devices = _kernel_devices(lambda: vc.conv3d(cx, cw, padding=1, groups=16))
    assert isinstance(y, cupy.ndarray) and y.device.id == 1 and devices == {1}
    _check_forward(torch.from_numpy(cupy.asnumpy(y)), x, w, 16)


def test_operands_on_two_gpus_or_a_stream_of_the_other_gpu_are_refused():
    x0, w0, _ = _operands("cuda:0", 16)
    x1, w1, _ = _operands("cuda:1", 16)
    one_gpu = r"^\[conv3d\] Expected the input and the weight on one GPU but got cuda:0 and cuda:1\."
    with pytest.raises(ValueError, match=one_gpu):
        vc.conv3d(x0, w1, padding=1, groups=16)
    with pytest.raises(ValueError, match=one_gpu):
        vc.conv3d(x0, Producer(w1), padding=1, groups=16)
    with pytest.raises(ValueError, match=one_gpu):
        vc.conv3d(Producer(x0), Producer(w1), padding=1, groups=16)
    with pytest.raises(
        ValueError,
        match=r"^\[conv3d\] The input is on cuda:1, so the stream must be a GPU stream of device 1",
    ):
        vc.conv3d(x1, w1, padding=1, groups=16, stream=vc.Device(vc.gpu, 0))
    with pytest.raises(ValueError, match=r"CUDA device 2 does not exist \(2 found\)"):
        vc.conv3d(x1.cpu().numpy(), w1.cpu().numpy(), padding=1, groups=16, stream=vc.Device(vc.gpu, 2))


def test_volconv_torch_layers_train_on_the_second_gpu():
    # volconv.torch's layers on cuda:1 with GPU 0 current: the forward on
    # the caller's thread, the backward on autograd's thread for GPU 1; the
    # depthwise layer's kernels (volconv's) run on GPU 1 in both.
    vt = pytest.importorskip("volconv.torch")
    torch.manual_seed(0)
    ref = torch.nn.Sequential(
        torch.nn.Conv3d(4, 16, 3, padding=1),
        torch.nn.Conv3d(16, 16, 3, padding=1, groups=16),
        torch.nn.ConvTranspose3d(16, 8, 2, stride=2),
    ).to("cuda:1")
    ours = torch.nn.Sequential(
        vt.nn.Conv3d(4, 16, 3, padding=1),
        vt.nn.Conv3d(16, 16, 3, padding=1, groups=16),
        vt.nn.ConvTranspose3d(16, 8, 2, stride=2),
    ).to("cuda:1")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 6, 7, 8, device="cuda:1")

    def step():
        y = ours(x)
        y.square().sum().backward()
        return y

    y, devices = _kernel_devices(step)
    assert devices == {1} and y.device == torch.device("cuda:1")
    y_ref = ref(x)
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        assert p.grad.device == torch.device("cuda:1")
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-3, msg=name)
