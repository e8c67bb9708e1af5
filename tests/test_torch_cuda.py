"""volconv.torch on CUDA tensors (the device tool's H200): conv3d and
conv_transpose3d forward and backward, depthwise (volconv's kernels) and
dense (cuDNN), against the float64 CPU results of torch's own convs; bias,
activation and residual; the padding modes; the nn layers loading torch.nn
weights; autocast in the context's dtype; torch.compile; a side stream;
and the errors. Skipped, with the reason, where there is no CUDA GPU."""

from __future__ import annotations

import pytest
from cuda_torch import torch_on_cuda

torch = torch_on_cuda()
import torch.nn.functional as F  # noqa: E402

import volconv.torch as vt  # noqa: E402

torch.backends.cudnn.allow_tf32 = False  # torch's float32 convs in float32
CL3D = torch.channels_last_3d
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
ACT = {
    None: lambda y: y,
    "relu": F.relu,
    "silu": F.silu,
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
}


def rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed + 7 * sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def on_gpu(t, dtype, grad=True):
    """The CUDA leaf in `dtype` and the float64 CPU leaf of exactly its values."""
    dev = t.to(dtype).to("cuda").contiguous(memory_format=CL3D if t.dim() == 5 else torch.contiguous_format)
    ref = dev.detach().double().cpu()
    return dev.requires_grad_(grad), ref.requires_grad_(grad)


def close(got, want, dtype, what):
    """Within the dtype's rounding, relative to the reference's scale (each
    output is a sum of many products, rounded once in 16 bits)."""
    scale = want.abs().max().item() or 1.0
    tol = {torch.float32: 2e-5, torch.bfloat16: 2e-2, torch.float16: 3e-3}[dtype] * scale
    torch.testing.assert_close(got.detach().double().cpu(), want.detach(), rtol=0, atol=tol, msg=what)


def backward_and_compare(y, ref, dtype, **leaves):
    """Backward of one random output gradient through both; each leaf's
    gradient (on the GPU, in dtype) against the reference's."""
    gy, gyr = on_gpu(rand(*ref.shape, seed=9), dtype, grad=False)
    y.backward(gy)
    ref.backward(gyr)
    for what, (leaf, leaf_ref) in leaves.items():
        assert leaf.grad.device == leaf.device and leaf.grad.dtype == dtype
        close(leaf.grad, leaf_ref.grad, dtype, f"{what} gradient")


# (input shape, weight shape, stride, padding, dilation, groups): depthwise
# 3x3x3 (volconv's tiled kernel), depthwise strided and dilated (its general
# kernel), dense and grouped with asymmetric padding (cuDNN).
CONV3D = [
    ((2, 32, 6, 9, 10), (32, 1, 3, 3, 3), 1, 1, 1, 32),
    ((1, 24, 7, 8, 9), (24, 1, 3, 2, 3), (2, 1, 2), 1, (1, 2, 1), 24),
    ((2, 8, 5, 6, 7), (12, 8, 3, 3, 3), 1, 1, 1, 1),
    ((1, 8, 6, 7, 8), (8, 4, 3, 3, 3), 2, ((0, 1, 1), (1, 0, 1)), 1, 2),
]


def torch_padding(padding, x):
    """torch's F.conv3d has no asymmetric padding: pad first."""
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        lo, hi = padding
        return F.pad(x, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])), 0
    return x, padding


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CONV3D, ids=lambda c: "x".join(map(str, c[0])) + f"-g{c[5]}")
def test_conv3d_forward_and_gradients(case, dtype):
    x_shape, w_shape, stride, padding, dilation, groups = case
    (x, xr), (w, wr), (b, br) = (
        on_gpu(rand(*s, seed=i), dtype) for i, s in enumerate([x_shape, w_shape, w_shape[:1]])
    )
    y = vt.conv3d(x, w, b, stride, padding, dilation, groups)
    xp, p = torch_padding(padding, xr)
    ref = F.conv3d(xp, wr, br, stride, p, dilation, groups)
    assert y.device == x.device and y.dtype == dtype and y.is_contiguous(memory_format=CL3D)
    close(y, ref, dtype, "output")
    backward_and_compare(y, ref, dtype, input=(x, xr), weight=(w, wr), bias=(b, br))
    assert w.grad.stride() == w.stride()


@pytest.mark.parametrize("grad", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("activation", list(ACT), ids=str)
@pytest.mark.parametrize("groups", [1, 16])
def test_conv3d_epilogue(activation, groups, grad):
    # Inference hands bias, activation and residual to the backend (no fused
    # epilogue on CUDA: torch ops after the conv); training applies the
    # activation outside the op.
    dtype = torch.float32
    (x, xr), (w, wr), (b, br), (r, rr) = (
        on_gpu(rand(*s, seed=i), dtype, grad=grad)
        for i, s in enumerate([(1, 16, 5, 6, 7), (16, 16 // groups, 3, 3, 3), (16,), (1, 16, 5, 6, 7)])
    )
    with torch.set_grad_enabled(grad):
        y = vt.conv3d(x, w, b, padding=1, groups=groups, activation=activation, residual=r)
        ref = ACT[activation](F.conv3d(xr, wr, br, padding=1, groups=groups)) + rr
    close(y, ref, dtype, "output")
    if grad:
        y.sum().backward()
        ref.sum().backward()
        for got, want, what in ((x, xr, "input"), (w, wr, "weight"), (b, br, "bias"), (r, rr, "residual")):
            close(got.grad, want.grad, dtype, f"{what} gradient")


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv3d_padding_modes(mode):
    dtype = torch.float32
    (x, xr), (w, wr) = (
        on_gpu(rand(*s, seed=i), dtype) for i, s in enumerate([(2, 8, 5, 6, 7), (8, 1, 3, 3, 3)])
    )
    y = vt.conv3d(x, w, None, 1, (1, 2, 1), 1, 8, padding_mode=mode)
    ref = F.conv3d(F.pad(xr, (1, 1, 2, 2, 1, 1), mode=mode), wr, None, groups=8)
    close(y, ref, dtype, "output")
    y.backward(torch.ones_like(y))
    ref.backward(torch.ones_like(ref))
    close(x.grad, xr.grad, dtype, "input gradient")
    close(w.grad, wr.grad, dtype, "weight gradient")


def test_reflect_padding_too_wide_is_refused_as_on_the_cpu():
    x, w = torch.randn(1, 4, 2, 5, 5, device="cuda"), torch.randn(4, 1, 3, 3, 3, device="cuda")
    with pytest.raises(ValueError, match=r"Padding mode 'reflect' needs padding smaller than the input size"):
        vt.conv3d(x, w, padding=2, groups=4, padding_mode="reflect")


# (input shape, weight shape (C_in, C_out / groups, k...), stride, padding,
# output_padding, groups): the upsampling layer k2 s2 (cuDNN), k3 s2 p1
# op1 grouped, and a depthwise transpose (volconv's kernels).
TRANSPOSE = [
    ((2, 8, 3, 4, 5), (8, 4, 2, 2, 2), 2, 0, 0, 1),
    ((1, 8, 4, 3, 5), (8, 3, 3, 3, 3), 2, 1, 1, 2),
    ((1, 16, 4, 5, 6), (16, 1, 3, 3, 3), 1, 1, 0, 16),
    ((1, 8, 4, 3, 5), (8, 2, 3, 3, 3), 2, ((1, 0, 1), (0, 2, 1)), 1, 4),
]


def torch_transpose(x, w, b, stride, padding, output_padding, groups):
    """torch's F.conv_transpose3d has no asymmetric padding: crop its unpadded output."""
    if not (isinstance(padding, tuple) and isinstance(padding[0], tuple)):
        return F.conv_transpose3d(x, w, b, stride, padding, output_padding, groups)
    (lo, hi), y = padding, F.conv_transpose3d(x, w, b, stride, 0, output_padding, groups)
    d, h, w_ = y.shape[2:]
    return y[:, :, lo[0] : d - hi[0], lo[1] : h - hi[1], lo[2] : w_ - hi[2]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", TRANSPOSE, ids=lambda c: "x".join(map(str, c[1])) + f"-s{c[2]}-g{c[5]}")
def test_conv_transpose3d_forward_and_gradients(case, dtype):
    x_shape, w_shape, stride, padding, output_padding, groups = case
    c_out = w_shape[1] * groups
    (x, xr), (w, wr), (b, br) = (
        on_gpu(rand(*s, seed=i), dtype) for i, s in enumerate([x_shape, w_shape, (c_out,)])
    )
    y = vt.conv_transpose3d(x, w, b, stride, padding, output_padding, groups)
    ref = torch_transpose(xr, wr, br, stride, padding, output_padding, groups)
    close(y, ref, dtype, "output")
    backward_and_compare(y, ref, dtype, input=(x, xr), weight=(w, wr), bias=(b, br))


def test_nn_layers_load_torch_weights_and_train_as_torch():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(
        torch.nn.Conv3d(4, 16, 3, padding=1),
        torch.nn.Conv3d(16, 16, 3, padding=1, groups=16, padding_mode="replicate"),
        torch.nn.ConvTranspose3d(16, 8, 2, stride=2),
    ).cuda()
    ours = torch.nn.Sequential(
        vt.nn.Conv3d(4, 16, 3, padding=1),
        vt.nn.Conv3d(16, 16, 3, padding=1, groups=16, padding_mode="replicate"),
        vt.nn.ConvTranspose3d(16, 8, 2, stride=2),
    ).cuda()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 6, 7, 8, device="cuda")
    y, y_ref = ours(x), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    y.square().sum().backward()
    y_ref.square().sum().backward()
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-3, msg=name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_autocast_cuda_follows_torch_conv(dtype):
    x = torch.randn(1, 16, 5, 6, 7, device="cuda")
    w = torch.randn(16, 1, 3, 3, 3, device="cuda", requires_grad=True)
    wt = torch.randn(16, 4, 2, 2, 2, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        y, ref = vt.conv3d(x, w, padding=1, groups=16), F.conv3d(x, w, padding=1, groups=16)
        yt, yt_ref = vt.conv_transpose3d(x, wt, stride=2), F.conv_transpose3d(x, wt, stride=2)
    assert y.dtype == ref.dtype == dtype
    assert yt.dtype == yt_ref.dtype == dtype
    torch.testing.assert_close(y.float(), ref.float(), rtol=2e-2, atol=5e-2)
    y.float().sum().backward()
    assert w.grad.dtype == torch.float32


def test_compiled_model_matches_eager():
    model = torch.nn.Sequential(
        vt.nn.Conv3d(8, 8, 3, padding=1, groups=8, activation="silu"), vt.nn.Conv3d(8, 4, 1)
    ).cuda()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(1, 8, 5, 6, 7, device="cuda", requires_grad=True)
    y, y_eager = compiled(x), model(x)
    torch.testing.assert_close(y, y_eager, rtol=0, atol=0)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_eager,) = torch.autograd.grad(y_eager.sum(), x)
    torch.testing.assert_close(g, g_eager, rtol=0, atol=0)


def test_side_stream_orders_forward_and_backward():
    # The kernels run on the tensors' current stream: on a side stream, the
    # results are right once that stream has finished, without a device sync.
    x0 = torch.randn(2, 32, 8, 16, 16, device="cuda")
    w = torch.randn(32, 1, 3, 3, 3, device="cuda", requires_grad=True)
    ref = F.conv3d(x0.double(), w.detach().double(), padding=1, groups=32)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        x = (x0 * 1.0).requires_grad_()  # produced on the side stream
        torch.cuda._sleep(10_000_000)  # a queue in front of the conv: reading too early gives wrong values
        y = vt.conv3d(x, w, padding=1, groups=32)
        y.sum().backward()
    side.synchronize()
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-4)
    ones = torch.ones_like(ref)
    g_ref = torch.nn.grad.conv3d_input(x0.shape, w.detach().double(), ones, padding=1, groups=32)
    torch.testing.assert_close(x.grad.double(), g_ref, rtol=1e-5, atol=1e-4)


def test_float64_gradcheck_on_torch_cudnn():
    # float64 runs on torch's calls (volconv's kernels take 32 and 16 bits),
    # depthwise too: gradcheck through the padding rewrites (asymmetric,
    # reflect) and the transposed crop, on the GPU.
    def leaf(*shape):
        return torch.randn(*shape, device="cuda", dtype=torch.float64, requires_grad=True)

    x, w, wd, wt = leaf(1, 4, 3, 4, 3), leaf(6, 2, 2, 3, 2), leaf(4, 1, 3, 3, 3), leaf(4, 3, 2, 3, 2)
    lo_hi = ((0, 1, 2), (1, 0, 1))
    # The last number: gradcheck's tolerance between two backward runs, with
    # cuDNN held to its deterministic algorithms (without that flag a host
    # may pick a float64 filter gradient that sums with atomics: seen on one
    # H200 host, not on another). The reflect case's F.pad backward adds
    # with atomics on CUDA whatever the flag (torch lists
    # reflection_pad3d_backward as nondeterministic); the others must
    # repeat to the bit.
    checks = [
        (lambda x, w: vt.conv3d(x, w, None, (2, 1, 1), lo_hi, 1, 2), (x, w), 0.0),
        (lambda x, w: vt.conv3d(x, w, None, 1, (1, 2, 1), 1, 4, padding_mode="reflect"), (x, wd), 1e-12),
        (lambda x, w: vt.conv_transpose3d(x, w, None, 2, lo_hi, 1, 2), (x, wt), 0.0),
    ]
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True):
        for fn, inputs, nondet_tol in checks:
            assert torch.autograd.gradcheck(
                fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, nondet_tol=nondet_tol, fast_mode=True
            )


def test_ops_called_directly_with_two_dtypes_are_refused():
    # The ops' own entry (a graph of them calls it, with no functional checks
    # in front): volconv's CUDA kernels are told each operand's dtype, and
    # refuse two (the float16 result is not their promotion), rather than
    # read one as the other.
    grad = torch.randn(1, 8, 4, 5, 6, device="cuda", dtype=torch.float16).contiguous(memory_format=CL3D)
    w = torch.randn(8, 1, 3, 3, 3, device="cuda")
    one = [1, 1, 1]
    with pytest.raises(
        ValueError,
        match=r"\[conv3d_grad_input\] Expected the .* dtype to be float32 \(the promotion of float16 and float32\)",
    ):
        torch.ops.volconv.conv3d_grad_input(grad, w, [1, 8, 4, 5, 6], one, one, one, one, 8)


def test_mixed_devices_are_refused_clearly():
    x, w = torch.randn(1, 4, 5, 5, 5, device="cuda"), torch.randn(4, 1, 3, 3, 3, device="cuda")
    one_device = r"\[volconv.torch.conv3d\] Expected input, weight, bias and residual to have one device"
    with pytest.raises(ValueError, match=one_device):
        vt.conv3d(x, w, torch.zeros(4), groups=4)
    with pytest.raises(ValueError, match=one_device):
        vt.conv3d(x, w.cpu(), groups=4)
    with pytest.raises(ValueError, match=one_device):  # dense: before torch's own call
        vt.conv3d(x, torch.randn(8, 4, 3, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"\[volconv.torch.conv_transpose3d\] Expected input, weight, bias and residual to have one dtype",
    ):
        vt.conv_transpose3d(x, torch.randn(4, 2, 2, 2, 2, device="cuda", dtype=torch.float16))


def test_dense_problems_run_on_torch_cudnn_and_depthwise_on_volconv(monkeypatch):
    # Which kernels run: volconv's CUDA route is called for depthwise
    # problems only (forward and both gradients), torch's own cuDNN calls
    # for the rest (dense, grouped, transposed).
    from volconv.torch import _cuda_kernels

    calls = []
    for name, fn in list(_cuda_kernels.CORE_OPS.items()):
        monkeypatch.setitem(
            _cuda_kernels.CORE_OPS, name, lambda *a, _n=name, _f=fn, **k: calls.append(_n) or _f(*a, **k)
        )
    x = torch.randn(1, 8, 4, 6, 6, device="cuda", requires_grad=True)
    for w, groups in ((torch.randn(16, 8, 3, 3, 3), 1), (torch.randn(8, 4, 3, 3, 3), 2)):
        vt.conv3d(x, w.cuda().requires_grad_(), padding=1, groups=groups).sum().backward()
    vt.conv_transpose3d(
        x, torch.randn(8, 4, 2, 2, 2, device="cuda", requires_grad=True), stride=2
    ).sum().backward()
    assert calls == []
    vt.conv3d(
        x, torch.randn(8, 1, 3, 3, 3, device="cuda", requires_grad=True), padding=1, groups=8
    ).sum().backward()
    vt.conv_transpose3d(
        x, torch.randn(8, 1, 3, 3, 3, device="cuda", requires_grad=True), groups=8
    ).sum().backward()
    assert sorted(calls) == sorted(
        ["conv3d", "conv3d_grad_input", "conv3d_grad_weight"]
        + ["conv_transpose3d", "conv_transpose3d_grad_input", "conv_transpose3d_grad_weight"]
    )


def test_ops_called_directly_on_dense_problems():
    # torch.ops.volconv.* (what a graph of the ops calls) on dense CUDA
    # problems: torch's calls, through the ops' own backward formula.
    dtype = torch.float32
    (x, xr), (w, wr), (wt, wtr) = (
        on_gpu(rand(*s, seed=i), dtype)
        for i, s in enumerate([(1, 8, 5, 6, 7), (12, 4, 3, 3, 3), (8, 3, 2, 3, 2)])
    )
    y = torch.ops.volconv.conv3d(x, w, None, None, [2, 1, 1], [1, 0, 1], [1, 0, 1], [1, 2, 1], 2, None)
    ref = F.conv3d(xr, wr, None, (2, 1, 1), (1, 0, 1), (1, 2, 1), 2)
    close(y, ref, dtype, "conv3d")
    backward_and_compare(y, ref, dtype, input=(x, xr), weight=(w, wr))
    x.grad = None
    xr.grad = None
    y = torch.ops.volconv.conv_transpose3d(
        x, wt, None, [2, 2, 1], [1, 0, 1], [1, 0, 1], [1, 1, 0], [1, 1, 2], 2
    )
    ref = F.conv_transpose3d(xr, wtr, None, (2, 2, 1), (1, 0, 1), (1, 1, 0), 2, (1, 1, 2))
    close(y, ref, dtype, "conv_transpose3d")
    backward_and_compare(y, ref, dtype, input=(x, xr), weight=(wt, wtr))
