"""volconv.torch's registration: gradcheck (float64, against finite
differences) for every op, groups, padding mode and epilogue; weight
gradients in the parameter's memory format; double backward refused; the
fake kernels (torch.library.opcheck); torch.compile without a graph break;
CPU autocast as torch's conv."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
vt = pytest.importorskip("volconv.torch")
from volconv.torch import _ops  # noqa: E402

CL3D = torch.channels_last_3d


def rand(*shape, seed=0, dtype=torch.float64, grad=True):
    g = torch.Generator().manual_seed(seed + 7 * sum(shape))
    return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(grad)


def gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 1, 1, 1), ((2, 1, 2), ((0, 1, 2), (1, 0, 1)), (1, 2, 1), 2), (2, 0, 1, 4), (1, "same", 2, 2)],
)
def test_conv3d_gradcheck(stride, padding, dilation, groups):
    x, w, b = rand(2, 4, 5, 4, 5), rand(4, 4 // groups, 3, 2, 3, seed=1), rand(4, seed=2)
    gradcheck(lambda x, w, b: vt.conv3d(x, w, b, stride, padding, dilation, groups), x, w, b)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv3d_gradcheck_padding_modes(mode):
    x, w = rand(1, 2, 4, 5, 4), rand(4, 1, 3, 3, 3, seed=1)
    gradcheck(lambda x, w: vt.conv3d(x, w, None, 1, (1, 2, 1), 1, 2, padding_mode=mode), x, w)


@pytest.mark.parametrize("activation", [None, "relu", "silu", "gelu_tanh"])
def test_conv3d_gradcheck_epilogue(activation):
    x, w, b, r = (
        rand(1, 3, 4, 4, 4),
        rand(4, 3, 3, 3, 3, seed=1),
        rand(4, seed=2),
        rand(1, 4, 4, 4, 4, seed=3),
    )
    gradcheck(lambda x, w, b, r: vt.conv3d(x, w, b, padding=1, activation=activation, residual=r), x, w, b, r)


@pytest.mark.parametrize("activation", ["relu", "silu", "gelu_tanh"])
def test_op_gradcheck_with_fused_activation(activation):
    # The op called directly keeps its fused activation in grad mode and
    # recomputes the pre-activation in backward.
    x, w, b = rand(1, 3, 4, 4, 4), rand(4, 3, 3, 3, 3, seed=1), rand(4, seed=2)
    op = torch.ops.volconv.conv3d
    gradcheck(lambda x, w, b: op(x, w, b, None, [1] * 3, [1] * 3, [1] * 3, [1] * 3, 1, activation), x, w, b)


@pytest.mark.parametrize(
    "stride, padding, output_padding, dilation, groups",
    [(1, 0, 0, 1, 1), ((2, 1, 2), (1, 0, 1), (1, 0, 0), (1, 2, 1), 2), (2, ((0, 1, 0), (1, 0, 2)), 1, 1, 4)],
)
def test_conv_transpose3d_gradcheck(stride, padding, output_padding, dilation, groups):
    x, w, b = rand(2, 4, 3, 4, 3), rand(4, 8 // groups, 2, 3, 2, seed=1), rand(8, seed=2)
    gradcheck(
        lambda x, w, b: vt.conv_transpose3d(x, w, b, stride, padding, output_padding, groups, dilation),
        x,
        w,
        b,
    )


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL3D])
def test_weight_gradient_in_the_parameters_memory_format(fmt):
    # The 1x1x1 conv with one output channel is contiguous in both formats,
    # yet its strides must still be the parameter's (DDP's buckets compare them).
    layers = (
        vt.nn.Conv3d(4, 6, 3, padding=1),
        vt.nn.Conv3d(4, 1, 1),
        vt.nn.ConvTranspose3d(4, 6, 3, groups=2),
        vt.nn.Conv3d(4, 4, 3, padding=1, groups=4),  # depthwise: a size-1 dimension, relabelled (below)
    )
    for layer in layers:
        layer.weight.data = layer.weight.data.contiguous(memory_format=fmt)
        layer(torch.randn(1, 4, 5, 5, 5)).sum().backward()
        assert layer.weight.grad.is_contiguous(memory_format=fmt)
        assert layer.weight.grad.stride() == layer.weight.stride()


def test_weight_gradient_relabelled_where_only_size_one_strides_differ():
    # A depthwise weight (C, 1, k, k, k) in either memory format differs only
    # in the stride of its size-1 dimension, which addresses nothing: the
    # kernel's result is taken as the parameter's strides without a copy (a
    # copy is an allocation and a kernel launch a step on CUDA).
    param = torch.randn(8, 1, 3, 3, 3)
    grad = torch.empty_strided((8, 1, 3, 3, 3), (27, 1, 9, 3, 1)).copy_(
        torch.randn(8, 1, 3, 3, 3)
    )  # as the kernels give it
    assert grad.stride() != param.stride()
    got = _ops._like_parameter(grad, param)
    assert got.stride() == param.stride() and torch.equal(got, grad)
    assert got.data_ptr() == grad.data_ptr()
    # Real layout differences are still copied into the parameter's format.
    param, grad = torch.randn(6, 4, 3, 3, 3), torch.randn(6, 4, 3, 3, 3).contiguous(memory_format=CL3D)
    got = _ops._like_parameter(grad, param)
    assert got.stride() == param.stride() and torch.equal(got, grad)
    assert got.data_ptr() != grad.data_ptr()


@pytest.mark.parametrize(
    "ours, theirs, weight_shape, args",
    [
        (vt.conv3d, F.conv3d, (6, 2, 3, 3, 3), (2, 1, 2, 2)),  # stride, padding, dilation, groups
        (vt.conv_transpose3d, F.conv_transpose3d, (4, 3, 3, 3, 3), (2, 1, 1, 2, 1)),  # + output_padding
    ],
)
def test_gradients_match_torch(ours, theirs, weight_shape, args):
    # Values, not only finite differences: against torch's own backward, float32.
    x, w = rand(2, 4, 6, 5, 6, dtype=torch.float32), rand(*weight_shape, seed=1, dtype=torch.float32)
    got = torch.autograd.grad(ours(x, w, None, *args).square().sum(), (x, w))
    ref = torch.autograd.grad(theirs(x, w, None, *args).square().sum(), (x, w))
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_double_backward_is_refused():
    x, w = rand(1, 2, 4, 4, 4), rand(3, 2, 3, 3, 3, seed=1)
    (gx,) = torch.autograd.grad(vt.conv3d(x, w).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward .* is not supported by volconv"):
        gx.sum().backward()


@pytest.mark.parametrize(
    "op, args",
    [
        (
            _ops.conv3d_op,
            lambda: (
                rand(1, 4, 4, 5, 4),
                rand(4, 2, 3, 3, 3, seed=1),
                rand(4, seed=2),
                rand(1, 4, 2, 5, 2, seed=3),
                [1, 1, 1],
                [0, 1, 0],
                [0, 1, 0],
                [1, 1, 1],
                2,
                None,
            ),
        ),
        (
            _ops.conv_transpose3d_op,
            lambda: (
                rand(1, 4, 3, 3, 3),
                rand(4, 3, 2, 2, 2, seed=1),
                rand(6, seed=2),
                [2, 2, 2],
                [0, 1, 0],
                [1, 0, 0],
                [1, 0, 0],
                [1, 1, 1],
                2,
            ),
        ),
    ],
)
def test_opcheck(op, args):
    # Schema, fake kernel (shapes and strides vs the real ones), autograd registration.
    torch.library.opcheck(
        op, args(), test_utils=("test_schema", "test_faketensor", "test_autograd_registration")
    )


def test_fake_declares_channels_last_strides():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y = vt.conv3d(torch.empty(2, 4, 5, 6, 7), torch.empty(8, 4, 3, 3, 3), padding=1)
        t = vt.conv_transpose3d(torch.empty(2, 4, 5, 6, 7), torch.empty(4, 8, 2, 2, 2), stride=2)
    assert y.shape == (2, 8, 5, 6, 7) and y.stride() == (8 * 5 * 6 * 7, 1, 6 * 7 * 8, 7 * 8, 8)
    assert t.shape == (2, 8, 10, 12, 14) and t.is_contiguous(memory_format=CL3D)


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = vt.nn.Conv3d(4, 8, 3, padding=1, activation="silu")
        self.down = vt.nn.Conv3d(8, 8, 3, stride=2, padding=1, groups=2, padding_mode="reflect")
        self.up = vt.nn.ConvTranspose3d(8, 4, 2, stride=2)

    def forward(self, x):
        return self.up(self.down(self.conv(x))) + x


def test_compile_fullgraph_without_graph_break():
    # aot_eager traces forward and backward through the fake kernels (and
    # keeps CI fast: no inductor code generation).
    torch.manual_seed(0)
    m = _Block()
    x = torch.randn(2, 4, 6, 6, 6)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(m)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    y = compiled(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    ref = m(x)
    ref.square().sum().backward()
    torch.testing.assert_close(y, ref)
    for g, p in zip(grads, m.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_inductor_compiled_model_matches_torch_nn():
    # The default backend generates code around our ops from what the fake
    # kernels declare (shapes and channels_last_3d strides), so a wrong
    # declaration gives wrong numbers here, which aot_eager cannot show.
    # The reference is the same model built from torch.nn, run eagerly.
    torch.manual_seed(0)
    ours = torch.nn.Sequential(
        vt.nn.Conv3d(3, 8, 3, padding=1), torch.nn.SiLU(), vt.nn.ConvTranspose3d(8, 4, 2, stride=2)
    )
    ref = torch.nn.Sequential(
        torch.nn.Conv3d(3, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.ConvTranspose3d(8, 4, 2, stride=2)
    )
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 5, 6, 7)
    torch._dynamo.reset()
    compiled = torch.compile(ours, fullgraph=True)
    y = compiled(x)
    (y * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
    y_ref = ref(x)
    (y_ref * torch.arange(y_ref.numel()).reshape(y_ref.shape).sin()).sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for (name, p), p_ref in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_cpu_follows_torch_conv(dtype):
    # The context's dtype, whichever it is (a registration with one fixed
    # dtype gave bfloat16 under float16 autocast: this test caught it).
    x, w, b = (
        rand(1, 4, 5, 5, 5, dtype=torch.float32, grad=False),
        rand(6, 4, 3, 3, 3, dtype=torch.float32),
        None,
    )
    with torch.autocast("cpu", dtype=dtype):
        y = vt.conv3d(x, w, b, padding=1)
        ref = F.conv3d(x, w, b, padding=1)
        yt = vt.conv_transpose3d(x, rand(4, 2, 2, 2, 2, dtype=torch.float32), stride=2)
        yt_ref = F.conv_transpose3d(x, rand(4, 2, 2, 2, 2, dtype=torch.float32), stride=2)
    assert y.dtype == ref.dtype == dtype
    assert yt.dtype == yt_ref.dtype == dtype
    torch.testing.assert_close(y.float(), ref.float(), rtol=2e-2, atol=6e-2)
    y.float().sum().backward()
    assert w.grad.dtype == torch.float32  # the gradient reaches the float32 parameter


def test_compiled_model_under_autocast_follows_the_context():
    # torch.compile traces the autocast kernel: each context's dtype, as eager.
    model = torch.nn.Sequential(vt.nn.Conv3d(4, 6, 3, padding=1), torch.nn.ReLU())
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = rand(1, 4, 5, 5, 5, dtype=torch.float32, grad=False)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cpu", dtype=dtype):
            got, eager = compiled(x), model(x)
        assert got.dtype == eager.dtype == dtype
        torch.testing.assert_close(got, eager, rtol=0, atol=0)


def test_eager_path_only_where_the_dispatcher_adds_nothing():
    # Plain eager calls take the autograd.Functions (no custom-op dispatch);
    # autocast, subclasses (fake tensors) and compilation keep the ops.
    from torch._subclasses.fake_tensor import FakeTensorMode

    from volconv.torch import _eager

    x, w = rand(1, 2, 3, 3, 3), rand(2, 2, 1, 1, 1)
    assert _eager.eager(x, w, None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _eager.eager(x, w, None)
    with FakeTensorMode():
        fake = torch.empty(1, 2, 3, 3, 3)
    assert not _eager.eager(fake, w, None)
    meta = x.to("meta")
    assert not _eager.eager(meta, w.to("meta"), None)
    assert vt.conv3d(meta, w.to("meta"), padding=1).shape == (1, 2, 5, 5, 5)  # the fake kernel
    seen = []
    torch.compile(lambda t: seen.append(_eager.eager(t)) or t + 1, fullgraph=False, backend="eager")(x)
    assert seen == [False]
