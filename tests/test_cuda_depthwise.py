"""The CUDA backend's depthwise kernels on a real NVIDIA GPU (the device
tool's H200): every direction and dtype against the float64 reference and
against torch's own CUDA convolution; torch CUDA tensors in place on their
current stream, numpy arrays copied in with a GPU stream, 64-bit offsets,
a bit-identical weight gradient, and the errors for what it cannot run.
Skipped, with the reason, where there is no CUDA GPU."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_cases import CASES, case_id, output_size
from cuda_torch import torch_on_cuda
from reference_training import (
    assert_close,
    assert_same_nonfinite,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
)

import volconv as vc

from reference import TOLERANCE, conv3d_reference

torch = torch_on_cuda()
import torch.nn.functional as F  # noqa: E402

# torch's float32 convolutions in float32 (TF32 would round the inputs to 10 bits).
torch.backends.cudnn.allow_tf32 = False

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _operands(case, dtype, seed=0):
    """Rounded to dtype first, so the reference sees exactly what the kernels read."""
    n, size, c, k, s, (lo, hi), d = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *size, c, generator=g).to(DTYPES[dtype])
    w = torch.randn(c, *k, 1, generator=g).to(DTYPES[dtype])
    gy = torch.randn(n, *output_size(size, k, s, lo, hi, d), c, generator=g).to(DTYPES[dtype])
    return x, w, gy


def _np(t):
    return t.detach().cpu().double().numpy()


def _kw(case):
    _, _, c, _, s, (lo, hi), d = case
    return dict(stride=s, padding=(lo, hi), dilation=d, groups=c)


def _ref_kw(case):
    _, _, c, _, s, (lo, hi), d = case
    return dict(stride=s, pad_lo=lo, pad_hi=hi, dilation=d, groups=c)


def _torch_input(t, lo, hi):
    """NDHWC -> torch's NCDHW (channels_last_3d memory), padded as conv3d pads."""
    t = t.permute(0, 4, 1, 2, 3)
    return F.pad(t, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])).contiguous(
        memory_format=torch.channels_last_3d
    )


def _agree(y, other, scale, dtype):
    bound = 2 * TOLERANCE[dtype] * scale + (2.0**-23 if dtype == "float16" else 1e-30)
    bad = ~(np.abs(_np(y) - _np(other)) <= bound)
    assert not bad.any(), f"{int(bad.sum())} elements differ from torch's CUDA conv beyond {TOLERANCE[dtype]}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward(case, dtype):
    x, w, _ = _operands(case, dtype)
    xc, wc = x.cuda(), w.cuda()
    y = vc.conv3d(xc, wc, **_kw(case))
    assert isinstance(y, torch.Tensor) and y.device == xc.device and y.dtype == xc.dtype
    scale = conv3d_reference(np.abs(_np(x)), np.abs(_np(w)), **_ref_kw(case))
    assert_close(_np(y), conv3d_reference(_np(x), _np(w), **_ref_kw(case)), scale, dtype, "forward")
    _, _, c, _, s, (lo, hi), d = case
    theirs = F.conv3d(_torch_input(xc, lo, hi), wc.permute(0, 4, 1, 2, 3), stride=s, dilation=d, groups=c)
    _agree(y, theirs.permute(0, 2, 3, 4, 1), scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grad_input(case, dtype):
    x, w, gy = _operands(case, dtype)
    wc, gyc = w.cuda(), gy.cuda()
    dx = vc.conv3d_grad_input(gyc, wc, tuple(x.shape), **_kw(case))
    assert dx.device == gyc.device and dx.shape == x.shape
    ref_kw = _ref_kw(case)
    ref = conv3d_grad_input_reference(_np(gy), _np(w), x.shape, **ref_kw)
    scale = conv3d_grad_input_reference(np.abs(_np(gy)), np.abs(_np(w)), x.shape, **ref_kw)
    assert_close(_np(dx), ref, scale, dtype, "grad_input")
    # torch's own CUDA gradient, through autograd of its conv on the same data.
    _, _, c, _, s, (lo, hi), d = case
    xt = x.cuda().permute(0, 4, 1, 2, 3).requires_grad_(True)
    padded = F.pad(xt, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]))
    yt = F.conv3d(padded, wc.permute(0, 4, 1, 2, 3), stride=s, dilation=d, groups=c)
    (theirs,) = torch.autograd.grad(yt, xt, gyc.permute(0, 4, 1, 2, 3))
    _agree(dx, theirs.permute(0, 2, 3, 4, 1), scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_grad_weight(case, dtype):
    x, w, gy = _operands(case, dtype)
    xc, gyc = x.cuda(), gy.cuda()
    dw = vc.conv3d_grad_weight(xc, gyc, tuple(w.shape), **_kw(case))
    assert dw.device == xc.device and dw.shape == w.shape
    ref_kw = _ref_kw(case)
    ref = conv3d_grad_weight_reference(_np(x), _np(gy), w.shape, **ref_kw)
    scale = conv3d_grad_weight_reference(np.abs(_np(x)), np.abs(_np(gy)), w.shape, **ref_kw)
    assert_close(_np(dw), ref, scale, dtype, "grad_weight")
    _, _, c, _, s, (lo, hi), d = case
    wt = w.cuda().permute(0, 4, 1, 2, 3).requires_grad_(True)
    yt = F.conv3d(_torch_input(xc, lo, hi), wt, stride=s, dilation=d, groups=c)
    (theirs,) = torch.autograd.grad(yt, wt, gyc.permute(0, 4, 1, 2, 3))
    _agree(dw, theirs.permute(0, 2, 3, 4, 1), scale, dtype)


def test_weight_gradient_is_bit_identical_run_to_run():
    """Many chunks (a fixed reduction order): the same bits every time."""
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(2, 16, 40, 40, 48, device="cuda", generator=g)
    gy = torch.randn(2, 16, 40, 40, 48, device="cuda", generator=g)
    first = vc.conv3d_grad_weight(x, gy, (48, 3, 3, 3, 1), padding=1, groups=48)
    for _ in range(3):
        assert torch.equal(vc.conv3d_grad_weight(x, gy, (48, 3, 3, 3, 1), padding=1, groups=48), first)


def _torch_float64_directions(x, w, gy):
    """torch's float64 CUDA depthwise conv (padding 1) of NDHWC tensors and
    its autograd: (y, dx, dw), each back in volconv's layout."""
    c = x.shape[-1]
    x64 = x.double().permute(0, 4, 1, 2, 3).requires_grad_(True)
    w64 = w.double().permute(0, 4, 1, 2, 3).requires_grad_(True)
    y64 = F.conv3d(x64, w64, padding=1, groups=c)
    dx64, dw64 = torch.autograd.grad(y64, (x64, w64), gy.double().permute(0, 4, 1, 2, 3))
    return tuple(t.detach().permute(0, 2, 3, 4, 1) for t in (y64, dx64, dw64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_kernels_against_torch_float64(dtype):
    """The tiled 3x3x3 kernels where a weight-gradient block sums more than
    one item (33 x 33 tiles of 8 x 8 for one block of channels: 1089 items
    in 1024 chunks) and where D is cut in segments (8 depths: 2 segments),
    against torch's float64 CUDA convolution and its autograd; the bound
    per element is the same computation on absolute values. (In 16 bits the
    first shape's forward and input gradient run on the pairs kernel: 1089
    blocks of 64 channels.)"""
    g = torch.Generator(device="cuda").manual_seed(7)
    for n, size, c in ((1, (3, 264, 264), 32), (1, (8, 20, 20), 16)):
        x = torch.randn(n, *size, c, device="cuda", generator=g).to(DTYPES[dtype])
        w = torch.randn(c, 3, 3, 3, 1, device="cuda", generator=g).to(DTYPES[dtype])
        gy = torch.randn(n, *size, c, device="cuda", generator=g).to(DTYPES[dtype])
        refs = _torch_float64_directions(x, w, gy)
        scales = _torch_float64_directions(x.abs(), w.abs(), gy.abs())
        ours = (
            vc.conv3d(x, w, padding=1, groups=c),
            vc.conv3d_grad_input(gy, w, tuple(x.shape), padding=1, groups=c),
            vc.conv3d_grad_weight(x, gy, tuple(w.shape), padding=1, groups=c),
        )
        for name, mine, ref, scale in zip(("forward", "grad_input", "grad_weight"), ours, refs, scales):
            assert_close(_np(mine), _np(ref), _np(scale), dtype, f"tiled {name} {tuple(x.shape)}")


def _nonfinite_operands(size, c, spots, dtype, seed):
    """x (1, *size, c) and w (c, 3, 3, 3, 1) of dtype on the GPU, x holding
    an inf, a -inf and a NaN at the three (d, h, w, channel) spots."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(1, *size, c, device="cuda", generator=g).to(DTYPES[dtype])
    w = torch.randn(c, 3, 3, 3, 1, device="cuda", generator=g).to(DTYPES[dtype])
    for spot, value in zip(spots, ("inf", "-inf", "nan")):
        x[(0, *spot)] = float(value)
    return x, w


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_kernels_put_nonfinite_inputs_where_torch_does(dtype):
    """An inf, a -inf and a NaN in three channels of the input (and of the
    output gradient): the same NaN and inf elements as torch's CUDA conv and
    as float64, the finite ones close to torch's. A kernel that mixes
    channels or positions before the products (a filter as a diagonal on
    tensor cores: 0 * inf = NaN in the other channels of a chunk; Winograd's
    transforms) fails it: commit 946d6a4's tensor-core forward without its
    fallback leaked 399 NaNs."""
    c = 32
    x, w = _nonfinite_operands((6, 12, 12), c, ((2, 5, 5, 5), (4, 0, 11, 17), (0, 9, 3, 30)), dtype, seed=11)
    y = vc.conv3d(x, w, padding=1, groups=c)
    dx = vc.conv3d_grad_input(x, w, tuple(x.shape), padding=1, groups=c)
    xt, wt = x.permute(0, 4, 1, 2, 3), w.permute(0, 4, 1, 2, 3)
    theirs = F.conv3d(xt, wt, padding=1, groups=c).permute(0, 2, 3, 4, 1)
    # The input gradient of a stride-1 3x3x3 conv is the conv with the filter
    # flipped: torch's forward (torch's own 16-bit dgrad puts NaN in 189
    # elements where float64 has 18 on the H200).
    theirs_dx = F.conv3d(xt, wt.flip(2, 3, 4), padding=1, groups=c).permute(0, 2, 3, 4, 1)
    f64 = (
        F.conv3d(xt.double(), wt.double(), padding=1, groups=c).permute(0, 2, 3, 4, 1),
        F.conv3d(xt.double(), wt.double().flip(2, 3, 4), padding=1, groups=c).permute(0, 2, 3, 4, 1),
    )
    assert_same_nonfinite(_np(y), _np(f64[0]), f"{dtype} forward against float64")
    assert_same_nonfinite(_np(dx), _np(f64[1]), f"{dtype} grad_input against float64")
    xa, wa = xt.abs().nan_to_num(0, 0, 0).double(), wt.abs().double()
    scales = (F.conv3d(xa, wa, padding=1, groups=c), F.conv3d(xa, wa.flip(2, 3, 4), padding=1, groups=c))
    for what, mine, ref, scale in (
        ("forward", y, theirs, scales[0]),
        ("grad_input", dx, theirs_dx, scales[1]),
    ):
        assert_same_nonfinite(_np(mine), _np(ref), f"{dtype} {what}")
        assert np.isnan(_np(mine)).sum() + np.isinf(_np(mine)).sum() >= 27, (
            "the non-finite inputs reach the outputs"
        )
        finite = torch.isfinite(ref)
        _agree(mine[finite], ref[finite], _np(scale.permute(0, 2, 3, 4, 1)[finite]), dtype)


def _volconv_kernels(fn):
    """fn's result and the names of the volconv kernels it ran (torch's profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        result = fn()
        torch.cuda.synchronize()
    return result, {e.name for e in prof.events() if "volconv" in e.name and e.device_type.name == "CUDA"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_pairs_kernel_against_float64_with_nonfinite_inputs(dtype):
    """The 16-bit forward and input gradient with two channels a lane (the
    pairs kernel, which the planner takes where its launch has 512 blocks of
    64 channels: 17 x 17 tiles x 4 blocks here; torch's profiler says it
    ran), on a shape whose tiles and last block of channels overhang (130 =
    16 x 8 + 2, 200 = 3 x 64 + 8), with an inf, a -inf and a NaN in the
    input, one of them in the upper channel of a lane's pair and one in the
    last channel: the same non-finite elements as float64, the others within
    the bound of the same computation on absolute values."""
    c = 200
    x, w = _nonfinite_operands(
        (4, 130, 130), c, ((1, 64, 129, 199), (3, 0, 0, 0), (2, 77, 5, 63)), dtype, seed=13
    )
    y, names = _volconv_kernels(lambda: vc.conv3d(x, w, padding=1, groups=c))
    dx, names_dx = _volconv_kernels(lambda: vc.conv3d_grad_input(x, w, tuple(x.shape), padding=1, groups=c))
    assert any("dw_data_pairs" in n for n in names) and any("dw_data_pairs" in n for n in names_dx), names
    xt, wt = x.permute(0, 4, 1, 2, 3).double(), w.permute(0, 4, 1, 2, 3).double()
    xa, wa = xt.abs().nan_to_num(0, 0, 0), wt.abs()
    for what, mine, wk, wak in (
        ("forward", y, wt, wa),
        ("grad_input", dx, wt.flip(2, 3, 4), wa.flip(2, 3, 4)),
    ):
        ref = _np(F.conv3d(xt, wk, padding=1, groups=c).permute(0, 2, 3, 4, 1))
        scale = _np(F.conv3d(xa, wak, padding=1, groups=c).permute(0, 2, 3, 4, 1))
        got = _np(mine)
        assert_same_nonfinite(got, ref, f"{dtype} pairs {what}")
        assert (~np.isfinite(got)).sum() >= 3 * 8, "each non-finite input reaches its outputs"
        finite = np.isfinite(ref)
        assert_close(np.where(finite, got, 0), np.where(finite, ref, 0), scale, dtype, f"pairs {what}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_gradient_of_a_gradient_view_the_tiled_copies_cannot_read(dtype):
    """The tiled weight gradient copies the output gradient in 16-byte chunks
    of channels: a gradient view one element past a 16-byte boundary (every
    stride odd) must take another kernel, against torch's float64 autograd."""
    g = torch.Generator(device="cuda").manual_seed(11)
    c = 16
    x = torch.randn(1, 5, 12, 12, c, device="cuda", generator=g).to(DTYPES[dtype])
    wide = torch.randn(1, 5, 12, 12, c + 1, device="cuda", generator=g).to(DTYPES[dtype])
    gy = wide[..., 1:]  # starts 2 or 4 bytes past the allocation's 16-byte alignment
    w = torch.zeros(c, 3, 3, 3, 1, device="cuda", dtype=DTYPES[dtype])
    (_, _, ref), (_, _, scale) = (
        _torch_float64_directions(x, w, gy),
        _torch_float64_directions(x.abs(), w, gy.abs()),
    )
    mine = vc.conv3d_grad_weight(x, gy, tuple(w.shape), padding=1, groups=c)
    assert_close(_np(mine), _np(ref), _np(scale), dtype, "grad_weight of an unaligned gradient view")


def test_transposed_and_general_depthwise_with_a_gpu_stream():
    """Input-dilated problems (conv_transpose3d, strided grad_input) take the
    dilated kernels; host arrays with a GPU stream are copied in and back."""
    from reference_training import conv_transpose3d_reference

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 5, 9, 6)).astype(np.float32)
    w = rng.standard_normal((6, 3, 2, 3, 1)).astype(np.float32)
    y = vc.conv_transpose3d(x, w, stride=(2, 1, 2), padding=1, groups=6, stream=vc.gpu)
    assert isinstance(y, np.ndarray)
    kw = dict(stride=(2, 1, 2), pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=6)
    ref = conv_transpose3d_reference(x, w, **kw)
    scale = conv_transpose3d_reference(np.abs(x), np.abs(w), **kw)
    assert_close(y, ref, scale, "float32", "conv_transpose3d")


def test_numpy_arrays_with_a_gpu_stream_come_back_as_numpy():
    case = CASES[1]
    x, w, _ = _operands(case, "float32")
    s = vc.new_stream(vc.Device(vc.gpu, 0))
    y = vc.conv3d(x.numpy(), w.numpy(), stream=s, **_kw(case))
    assert isinstance(y, np.ndarray)
    scale = conv3d_reference(np.abs(_np(x)), np.abs(_np(w)), **_ref_kw(case))
    assert_close(y, conv3d_reference(_np(x), _np(w), **_ref_kw(case)), scale, "float32")


def test_torch_current_stream_and_a_volconv_stream_are_ordered():
    """Work runs on torch's current stream (a side stream here), or on a
    volconv stream ordered after it: the input is produced on the side stream
    behind a 50 ms sleep, so a call that did not wait for it would read
    memory not yet written; torch then reads the result on that stream."""
    case = CASES[0]
    x, w, _ = _operands(case, "float32")
    ref = conv3d_reference(_np(x) + 1, _np(w), **_ref_kw(case))
    scale = conv3d_reference(np.abs(_np(x) + 1), np.abs(_np(w)), **_ref_kw(case))
    base, wc = x.cuda(), w.cuda()
    torch.cuda.synchronize()
    side = torch.cuda.Stream()
    vs = vc.new_stream(vc.gpu)
    for stream in (None, vs):
        with torch.cuda.stream(side):
            torch.cuda._sleep(50_000_000)
            xc = base + 1  # produced on the side stream after the sleep
            y = vc.conv3d(xc, wc, stream=stream, **_kw(case))
            y_host = y.cpu()
        assert_close(_np(y_host), ref, scale, "float32", f"stream={stream}")


def test_offsets_past_2_to_the_31():
    """A strided view whose last item starts past 2^31 elements: 64-bit
    offsets (n * stride itself passes 2^31 for n = 2)."""
    base = torch.zeros(2**31 + 4096, dtype=torch.float16, device="cuda")
    step = 2**30 + 8  # N stride
    vals = torch.randn(3, 2, 3, 4, 8, dtype=torch.float16)
    x = base.as_strided((3, 2, 3, 4, 8), (step, 96, 32, 8, 1))
    x.copy_(vals.cuda())
    w = torch.randn(8, 3, 3, 3, 1, dtype=torch.float16)
    y = vc.conv3d(x, w.cuda(), padding=1, groups=8)
    kw = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=8)
    scale = conv3d_reference(np.abs(_np(vals)), np.abs(_np(w)), **kw)
    assert_close(_np(y), conv3d_reference(_np(vals), _np(w), **kw), scale, "float16", "index64 forward")
    gy = torch.randn(3, 2, 3, 4, 8, dtype=torch.float16)
    dw = vc.conv3d_grad_weight(x, gy.cuda(), (8, 3, 3, 3, 1), padding=1, groups=8)
    ref = conv3d_grad_weight_reference(_np(vals), _np(gy), (8, 3, 3, 3, 1), **kw)
    scale = conv3d_grad_weight_reference(np.abs(_np(vals)), np.abs(_np(gy)), (8, 3, 3, 3, 1), **kw)
    assert_close(_np(dw), ref, scale, "float16", "index64 grad_weight")
    del base


def test_devices_and_reasons():
    assert vc.unavailable_reason(vc.gpu) == ""
    assert vc.unavailable_reason(vc.Device(vc.gpu, torch.cuda.device_count())).startswith(
        f"CUDA device {torch.cuda.device_count()} does not exist"
    )
    assert vc.default_stream(vc.gpu).device == vc.Device(vc.gpu, 0)
    assert vc.default_device() == vc.cpu  # a CUDA GPU is never the automatic default


def test_what_the_cuda_backend_cannot_run_is_refused_by_name():
    # (Problems that are not depthwise go to cuDNN: tests/test_cuda_cudnn.py.)
    x = torch.randn(1, 4, 4, 4, 8, device="cuda")
    with pytest.raises(ValueError, match=r"^\[conv3d\] The CUDA backend pads with zeros only"):
        vc.conv3d(x, torch.randn(8, 3, 3, 3, 1, device="cuda"), groups=8, padding=1, padding_mode="replicate")
    with pytest.raises(ValueError, match=r"float32, float16 and bfloat16"):
        vc.conv3d(x.double(), torch.randn(8, 3, 3, 3, 1, device="cuda", dtype=torch.float64), groups=8)
    with pytest.raises(ValueError, match=r"one dtype, but got float32 and bfloat16"):
        vc.conv3d(x, torch.randn(8, 3, 3, 3, 1, device="cuda", dtype=torch.bfloat16), groups=8)
    with pytest.raises(ValueError, match=r"both in CUDA memory"):
        vc.conv3d(x, torch.randn(8, 3, 3, 3, 1), groups=8)
    with pytest.raises(ValueError, match=r"must be a GPU stream"):
        vc.conv3d(x, torch.randn(8, 3, 3, 3, 1, device="cuda"), groups=8, stream=vc.cpu)
    with pytest.raises(ValueError, match=r"epilogue"):
        vc.conv3d(x, torch.randn(8, 3, 3, 3, 1, device="cuda"), groups=8, activation="relu")


def test_cupy_arrays_in_place():
    cupy = pytest.importorskip("cupy")
    case = CASES[0]
    x, w, _ = _operands(case, "float32")
    y = vc.conv3d(cupy.asarray(x.numpy()), cupy.asarray(w.numpy()), **_kw(case))
    assert isinstance(y, cupy.ndarray)
    scale = conv3d_reference(np.abs(_np(x)), np.abs(_np(w)), **_ref_kw(case))
    assert_close(cupy.asnumpy(y), conv3d_reference(_np(x), _np(w), **_ref_kw(case)), scale, "float32", "cupy")
