"""volconv.torch.conv3d / conv_transpose3d against torch.nn.functional's own
(the reference: independent code, float64): values, shapes, channels_last_3d
results, unbatched input, padding forms and modes, the epilogue, and errors
that name the op."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
vt = pytest.importorskip("volconv.torch")

CL3D = torch.channels_last_3d


def rand(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, generator=g, dtype=dtype)


# (N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 4, 6, (5, 6, 7), (3, 3, 3), 1, 1, 1, 1),
    (1, 6, 4, (7, 5, 6), (3, 2, 3), (2, 1, 2), (1, 0, 2), (1, 2, 1), 2),
    (2, 4, 4, (6, 6, 6), (3, 3, 3), 2, 1, 1, 4),  # depthwise, strided
    (1, 3, 5, (4, 5, 6), (1, 1, 1), 1, 0, 1, 1),
    (1, 4, 4, (5, 5, 5), (3, 3, 3), 1, "same", 2, 1),
    (1, 4, 2, (5, 6, 5), (2, 3, 2), 1, "same", 1, 2),  # even kernel: asymmetric "same"
    (1, 2, 3, (5, 5, 5), (3, 3, 3), 1, "valid", 1, 1),
]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [False, True])
def test_conv3d_matches_torch(case, bias):
    n, ci, co, sp, k, stride, padding, dilation, groups = case
    x, w = rand(n, ci, *sp), rand(co, ci // groups, *k, seed=1)
    b = rand(co, seed=2) if bias else None
    y = vt.conv3d(x, w, b, stride, padding, dilation, groups)
    ref = F.conv3d(x, w, b, stride, padding, dilation, groups)
    assert y.shape == ref.shape
    assert y.is_contiguous(memory_format=CL3D)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "case",
    [
        (1, 4, 6, (5, 6, 7), (3, 3, 3), 1, 0, 1, 1, 0),
        (2, 4, 6, (3, 4, 5), (3, 2, 3), (2, 1, 2), (1, 0, 1), (1, 2, 1), 2, (1, 0, 1)),
        (1, 4, 4, (3, 3, 3), (2, 2, 2), 2, 0, 1, 4, 0),
    ],
)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose3d_matches_torch(case, bias):
    n, ci, co, sp, k, stride, padding, dilation, groups, out_pad = case
    x, w = rand(n, ci, *sp), rand(ci, co // groups, *k, seed=1)
    b = rand(co, seed=2) if bias else None
    y = vt.conv_transpose3d(x, w, b, stride, padding, out_pad, groups, dilation)
    ref = F.conv_transpose3d(x, w, b, stride, padding, out_pad, groups, dilation)
    assert y.is_contiguous(memory_format=CL3D)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)


def test_unbatched_input():
    x, w, wt = rand(4, 5, 6, 5), rand(6, 2, 3, 3, 3, seed=1), rand(4, 3, 2, 2, 2, seed=2)
    torch.testing.assert_close(vt.conv3d(x, w, None, 1, 1, 1, 2), F.conv3d(x, w, None, 1, 1, 1, 2))
    torch.testing.assert_close(vt.conv_transpose3d(x, wt, stride=2), F.conv_transpose3d(x, wt, stride=2))


def test_asymmetric_padding_matches_explicit_pad():
    x, w = rand(1, 3, 5, 6, 7), rand(4, 3, 3, 3, 3, seed=1)
    lo, hi = (0, 2, 1), (1, 0, 3)
    ref = F.conv3d(F.pad(x, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])), w)
    torch.testing.assert_close(vt.conv3d(x, w, padding=(lo, hi)), ref)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch_nn(mode):
    torch.manual_seed(0)
    ref = torch.nn.Conv3d(4, 6, 3, padding=(2, 1, 0), padding_mode=mode, dtype=torch.float64, groups=2)
    x = rand(2, 4, 5, 6, 5)
    y = vt.conv3d(x, ref.weight, ref.bias, 1, (2, 1, 0), 1, 2, padding_mode=mode)
    torch.testing.assert_close(y, ref(x))


ACT = {"relu": F.relu, "silu": F.silu, "gelu_tanh": lambda v: F.gelu(v, approximate="tanh")}


@pytest.mark.parametrize("activation", ["relu", "silu", "gelu_tanh"])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("grad_mode", [False, True])
def test_epilogue_matches_torch_composition(activation, with_residual, grad_mode):
    # grad_mode: the fused kernel (no gradient needed) and the training split
    # (torch's activation after the conv) give the same values.
    x, w, b = rand(2, 4, 5, 5, 5), rand(6, 4, 3, 3, 3, seed=1), rand(6, seed=2)
    r = rand(2, 6, 5, 5, 5, seed=3) if with_residual else None
    ref = ACT[activation](F.conv3d(x, w, b, padding=1)) + (0 if r is None else r)
    with torch.set_grad_enabled(grad_mode):
        y = vt.conv3d(x, w.requires_grad_(grad_mode), b, padding=1, activation=activation, residual=r)
    assert y.is_contiguous(memory_format=CL3D)
    torch.testing.assert_close(y.detach(), ref.detach(), rtol=1e-12, atol=1e-12)


def test_channels_last_input_is_not_copied():
    # The kernel reads the caller's NDHWC memory: a channels_last_3d input
    # whose storage is changed between two calls gives the new result.
    x = rand(1, 4, 5, 5, 5).contiguous(memory_format=CL3D)
    w = rand(4, 4, 1, 1, 1, seed=1)
    seen = []
    import volconv.torch._backends as backends

    original = backends._OPS["conv3d"]

    def spy(a, *args, **kw):
        seen.append(a.data_ptr())
        return original(a, *args, **kw)

    backends._OPS["conv3d"] = spy
    try:
        vt.conv3d(x, w)
    finally:
        backends._OPS["conv3d"] = original
    assert seen == [x.data_ptr()]


def test_float32_and_bfloat16():
    x, w = rand(1, 8, 6, 6, 6, dtype=torch.float32), rand(8, 8, 3, 3, 3, dtype=torch.float32, seed=1)
    torch.testing.assert_close(vt.conv3d(x, w, padding=1), F.conv3d(x, w, padding=1), rtol=1e-4, atol=1e-4)
    xb, wb = x.bfloat16(), w.bfloat16()
    y = vt.conv3d(xb, wb, padding=1)
    assert y.dtype == torch.bfloat16
    ref = F.conv3d(xb.double(), wb.double(), padding=1)
    torch.testing.assert_close(y.double(), ref, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda x, w: vt.conv3d(x.numpy(), w),
            "[volconv.torch.conv3d] Expected the input to be a torch.Tensor",
        ),
        (lambda x, w: vt.conv3d(x[0, 0], w), "Expected the input to have 4 or 5 dimensions"),
        (lambda x, w: vt.conv3d(x, w, activation="tanh"), "Expected activation to be None"),
        (lambda x, w: vt.conv3d(x, w, padding_mode="mirror"), "Expected padding_mode to be one of"),
        (
            lambda x, w: vt.conv3d(x, w, stride=2, padding="same"),
            "padding='same' is not supported for strided",
        ),
        (lambda x, w: vt.conv3d(x, w, padding="full"), "Expected padding to be an int, a tuple of 3 ints"),
        (lambda x, w: vt.conv3d(x, w.float()), "Expected input, weight, bias and residual to have one dtype"),
        (lambda x, w: vt.conv3d(x, w, stride=0), "[conv3d] Stride sizes must be positive"),
        (
            lambda x, w: vt.conv3d(x, w[:, :2]),
            "[volconv.torch.conv3d] Expected the input's channels (dim 1, 4)",
        ),
        (lambda x, w: vt.conv3d(x, w[:3], groups=2), "with groups=2 dividing C_in and C_out"),
        (lambda x, w: vt.conv3d(x, w, groups=True), "[volconv.torch.conv3d] Expected groups to be an int"),
        (
            lambda x, w: vt.conv_transpose3d(x, w[:3]),
            "[volconv.torch.conv_transpose3d] Expected the input's channels",
        ),
        (
            lambda x, w: vt.conv_transpose3d(x, w, padding="same"),
            "[volconv.torch.conv_transpose3d] Expected padding",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_op(call, message):
    x, w = rand(1, 4, 5, 5, 5), rand(4, 4, 3, 3, 3, seed=1)
    with pytest.raises((ValueError, TypeError)) as e:
        call(x, w)
    assert message in str(e.value)


def test_other_devices_are_refused_clearly():
    from volconv.torch._backends import run

    with pytest.raises(
        ValueError, match=r"\[volconv.torch.conv3d\] Expected CPU or CUDA tensors but got tensors on mps"
    ):
        run("conv3d", "volconv.torch.conv3d", torch.device("mps"))


@pytest.mark.parametrize("activation", [None, "relu", "silu", "gelu_tanh"])
def test_cuda_epilogue_equals_the_fused_one(activation):
    # On CUDA, bias, activation and residual follow the conv as torch ops
    # (_epilogue.epilogue, on the NCDHW result _cuda_kernels.conv3d makes);
    # that composition runs here on a CPU conv without an epilogue, against
    # the CPU kernels' fused epilogue.
    from volconv.torch._epilogue import epilogue
    from volconv.torch._ops import _conv3d_impl

    x, w = rand(1, 5, 4, 5, 6).contiguous(memory_format=CL3D), rand(6, 5, 3, 3, 3, seed=1)
    b, r = rand(6, seed=2), rand(1, 6, 4, 5, 6, seed=3).contiguous(memory_format=CL3D)
    one = [1, 1, 1]
    plain = _conv3d_impl(x, w, None, None, one, one, one, one, 1, None, "zeros")
    got = epilogue(plain, b, activation, r)
    want = _conv3d_impl(x, w, b, r, one, one, one, one, 1, activation, "zeros")
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("groups", [1, 2, 8])
def test_cuda_padding_rewrites_equal_asymmetric_padding(groups):
    # What the CUDA route does where cuDNN pads both ends alike (an F.pad of
    # the difference for conv3d, a crop for the transpose), on CPU tensors
    # against the CPU kernels' own asymmetric padding. Depthwise (groups 8)
    # in 32 bits is left as it is: volconv's CUDA kernels pad any way.
    from volconv.torch._padding import cuda_conv3d_padding, cuda_transpose_padding

    lo, hi = (0, 2, 1), (1, 0, 1)
    x, w = rand(1, 8, 4, 5, 6), rand(8, 8 // groups, 3, 3, 3, seed=1)
    px, plo, phi, mode = cuda_conv3d_padding(x, w, lo, hi, (2, 1, 1), (1, 1, 1), groups, "zeros")
    assert mode == "zeros" and plo == phi  # float64 runs on torch's calls even when depthwise
    got = vt.conv3d(px, w, None, (2, 1, 1), (plo, phi), 1, groups)
    torch.testing.assert_close(
        got, vt.conv3d(x, w, None, (2, 1, 1), (lo, hi), 1, groups), rtol=1e-12, atol=1e-12
    )

    wt = rand(8, 8 // groups, 3, 3, 3, seed=2)
    tlo, thi, crop = cuda_transpose_padding(wt, lo, hi, groups)
    assert crop is not None
    if groups == 8:  # depthwise in 32 bits: volconv's kernels, which pad any way
        f32 = cuda_conv3d_padding(x.float(), w.float(), lo, hi, (2, 1, 1), (1, 1, 1), 8, "zeros")
        assert f32[1:3] == (lo, hi) and cuda_transpose_padding(wt.float(), lo, hi, 8)[2] is None
    y = vt.conv_transpose3d(x, wt, None, 2, (tlo, thi), 1, groups)
    want = vt.conv_transpose3d(x, wt, None, 2, (lo, hi), 1, groups)
    got = y if crop is None else crop(y)
    assert got.shape == want.shape and got.is_contiguous(memory_format=CL3D)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_cuda_padding_modes_pad_a_copy_as_torch_nn(mode):
    from volconv.torch._padding import cuda_conv3d_padding

    x, w = rand(1, 4, 4, 5, 6), rand(4, 1, 3, 3, 3, seed=1)
    px, plo, phi, m = cuda_conv3d_padding(x, w, (1, 2, 1), (1, 2, 1), (1, 1, 1), (1, 1, 1), 4, mode)
    assert m == "zeros" and plo == phi == (0, 0, 0)
    torch.testing.assert_close(
        vt.conv3d(px, w, groups=4),
        vt.conv3d(x, w, None, 1, (1, 2, 1), groups=4, padding_mode=mode),
        rtol=0,
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="Padding mode 'reflect' needs padding smaller than the input size"):
        cuda_conv3d_padding(x, w, (4, 0, 0), (4, 0, 0), (1, 1, 1), (1, 1, 1), 4, "reflect")


@pytest.mark.parametrize("groups", [1, 2])
def test_torch_cudnn_calls_equal_volconv_on_cpu_tensors(groups):
    # The calls that run dense CUDA problems (torch's own convolution ops)
    # take the ops' arguments in the ops' order: on CPU tensors each equals
    # the op implementation on volconv's CPU kernels.
    from volconv.torch import _cudnn_torch as tc
    from volconv.torch import _ops

    x, w = rand(2, 4, 5, 6, 7), rand(6, 4 // groups, 3, 2, 3, seed=1)
    args = ([2, 1, 2], [1, 0, 1], [1, 0, 1], [1, 2, 1], groups)
    y = _ops._conv3d_impl(x, w, None, None, *args, None, "zeros")
    torch.testing.assert_close(tc.conv3d(x, w, None, *args, "zeros"), y, rtol=1e-12, atol=1e-12)
    g = rand(*y.shape, seed=2)
    for ours, theirs in (
        (
            _ops._conv3d_grad_input_impl(g, w, list(x.shape), *args),
            tc.conv3d_grad_input(g, w, list(x.shape), *args, "zeros"),
        ),
        (
            _ops._conv3d_grad_weight_impl(x, g, list(w.shape), *args),
            tc.conv3d_grad_weight(x, g, list(w.shape), *args, "zeros"),
        ),
    ):
        assert theirs.is_contiguous(memory_format=CL3D)
        torch.testing.assert_close(theirs, ours, rtol=1e-12, atol=1e-12)

    wt = rand(4, 6 // groups, 2, 3, 2, seed=3)
    targs = ([2, 1, 2], [1, 0, 1], [1, 0, 1], [1, 0, 1], [1, 2, 1], groups)  # + output_padding
    yt = _ops._conv_transpose3d_impl(x, wt, None, *targs)
    torch.testing.assert_close(tc.conv_transpose3d(x, wt, None, *targs), yt, rtol=1e-12, atol=1e-12)
    gt = rand(*yt.shape, seed=4)
    for ours, theirs in (
        (
            _ops._conv_transpose3d_grad_input_impl(gt, wt, list(x.shape), *targs),
            tc.conv_transpose3d_grad_input(gt, wt, list(x.shape), *targs),
        ),
        (
            _ops._conv_transpose3d_grad_weight_impl(x, gt, list(wt.shape), *targs),
            tc.conv_transpose3d_grad_weight(x, gt, list(wt.shape), *targs),
        ),
    ):
        torch.testing.assert_close(theirs, ours, rtol=1e-12, atol=1e-12)
    with pytest.raises(
        ValueError, match=r"\[volconv.torch.conv3d\] On CUDA a convolution that is not depthwise"
    ):
        tc.conv3d(x, w, None, [1] * 3, [1, 0, 1], [0, 0, 1], [1] * 3, groups, "zeros")


def test_cuda_routing_follows_the_cuda_planner():
    # Which CUDA problems stay on volconv's kernels is the C++ planner's rule
    # (asked here without a GPU); volconv.torch writes it out for
    # torch.compile, and float64 always goes to torch's calls.
    from volconv import _core
    from volconv.torch._cudnn_torch import on_volconv_kernels

    for groups, c_in, c_out in [(8, 8, 8), (3, 3, 3), (1, 1, 1), (8, 8, 16), (1, 8, 8), (2, 8, 8), (4, 8, 4)]:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            assert on_volconv_kernels(groups, c_in, c_out, dtype) == _core._cuda_kernels_run(
                groups, c_in, c_out
            )
        assert not on_volconv_kernels(groups, c_in, c_out, torch.float64)
    assert _core._cuda_kernels_run(8, 8, 8) and not _core._cuda_kernels_run(8, 8, 16)
