"""The CUDA backend's cuDNN route for conv_transpose3d, conv_general and
their gradients (csrc/cuda/cudnn_plan.h's forward and transposed forms, the
filter transform) on the device tool's H200: against the float64 references
and torch's CUDA F.conv_transpose3d and its autograd, over groups 1/2,
strides 1/2/3, output_padding, dilation, a crop and every dtype; strided
weights and host arrays; conv_general with input dilation, flip or not, and
its weight gradient by the adjoint identity; what is refused."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_transpose_cases import (
    CASES,
    case_id,
    forward_weight,
    grad_input_reference,
    grad_weight_reference,
    output_size,
)
from reference_training import assert_close, conv_general_reference, conv_transpose3d_reference

import volconv as vc
from volconv import _training

torch = pytest.importorskip("torch")
_gpu = torch.cuda.is_available() and vc._core._gpu_backend() == "cuda"
pytestmark = pytest.mark.skipif(
    not _gpu, reason=f"no CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu)}"
)
if _gpu:
    torch.backends.cudnn.allow_tf32 = False  # torch's float32 conv in float32, as ours
import torch.nn.functional as F  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _np(t):
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float64)


def _operands(case, dtype, seed=0):
    """Rounded to dtype on the CPU first, so the references see what cuDNN reads."""
    n, size, ci, co, g, k, s, p, op, d = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *size, ci, generator=gen).to(DTYPES[dtype])
    w = torch.randn(co, *k, ci // g, generator=gen).to(DTYPES[dtype])
    gy = torch.randn(n, *output_size(size, k, s, p, op, d), co, generator=gen).to(DTYPES[dtype])
    return x, w, gy


def _kw(case):
    _, _, _, _, g, _, s, p, op, d = case
    return dict(stride=s, padding=p, dilation=d, output_padding=op, groups=g)


def _torch(case, x, w, gy):
    """torch's CUDA conv_transpose3d and its autograd, in volconv's layouts."""
    _, _, _, _, g, _, s, p, op, d = case
    xt = x.cuda().permute(0, 4, 1, 2, 3).requires_grad_(True)
    # torch's weight (C_in, C_out/groups, K...) is the forward conv's, channels second.
    wt = torch.from_numpy(forward_weight(w.float().numpy(), g)).to(w.dtype).cuda()
    wt = wt.permute(0, 4, 1, 2, 3).requires_grad_(True)
    yt = F.conv_transpose3d(xt, wt, None, s, p, op, g, d)
    dx, dw = torch.autograd.grad(yt, (xt, wt), gy.cuda().permute(0, 4, 1, 2, 3))
    dw = torch.from_numpy(forward_weight(dw.permute(0, 2, 3, 4, 1).float().cpu().numpy(), g))
    return yt.detach().permute(0, 2, 3, 4, 1), dx.permute(0, 2, 3, 4, 1), dw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_transpose_and_its_gradients_against_float64_and_torch(case, dtype):
    n, size, ci, co, g, k, s, p, op, d = case
    x, w, gy = _operands(case, dtype)
    xc, wc, gyc = x.cuda(), w.cuda(), gy.cuda()
    y = vc.conv_transpose3d(xc, wc, **_kw(case))
    dx = _training._conv_transpose3d_grad_input(gyc, wc, tuple(x.shape), **_kw(case))
    dw = _training._conv_transpose3d_grad_weight(xc, gyc, tuple(w.shape), **_kw(case))
    for t in (y, dx, dw):
        assert isinstance(t, torch.Tensor) and t.device == xc.device and t.dtype == xc.dtype
    x64, w64, g64 = _np(x), _np(w), _np(gy)
    gk = dict(stride=s, padding=p, dilation=d, groups=g)
    refs = (
        (
            conv_transpose3d_reference(x64, w64, s, p, p, d, op, g),
            conv_transpose3d_reference(abs(x64), abs(w64), s, p, p, d, op, g),
        ),
        (
            grad_input_reference(g64, w64, x.shape, **gk),
            grad_input_reference(abs(g64), abs(w64), x.shape, **gk),
        ),
        (
            grad_weight_reference(x64, g64, w.shape, **gk),
            grad_weight_reference(abs(x64), abs(g64), w.shape, **gk),
        ),
    )
    for name, mine, (ref, scale), theirs in zip(
        ("conv_transpose3d", "grad_input", "grad_weight"), (y, dx, dw), refs, _torch(case, x, w, gy)
    ):
        assert mine.shape == ref.shape, name
        assert_close(_np(mine), ref, scale, dtype, name)
        # torch rounds once per element too: within twice the reference tolerance.
        assert_close(_np(mine), _np(theirs), 2 * scale, dtype, f"{name} vs torch")


def test_strided_weight_views_and_host_arrays():
    """A weight that is a permuted view (the filter transform reads its
    strides), and numpy arrays with a GPU stream (copied in and back)."""
    case = CASES[2]
    n, size, ci, co, g, k, s, p, op, d = case
    x, w, gy = _operands(case, "float32", seed=5)
    x64, w64, g64 = _np(x), _np(w), _np(gy)
    wv = w.permute(4, 1, 2, 3, 0).contiguous().cuda().permute(4, 1, 2, 3, 0)
    assert not wv.is_contiguous()
    ref = conv_transpose3d_reference(x64, w64, s, p, p, d, op, g)
    scale = conv_transpose3d_reference(abs(x64), abs(w64), s, p, p, d, op, g)
    assert_close(_np(vc.conv_transpose3d(x.cuda(), wv, **_kw(case))), ref, scale, "float32", "view")
    st = vc.new_stream(vc.Device(vc.gpu, 0))
    y = vc.conv_transpose3d(x.numpy(), w.numpy(), stream=st, **_kw(case))
    assert isinstance(y, np.ndarray)
    assert_close(y, ref, scale, "float32", "numpy")
    gk = dict(stride=s, padding=p, dilation=d, groups=g)
    dw = _training._conv_transpose3d_grad_weight(
        x.numpy(), gy.numpy(), tuple(w.shape), stream=st, **_kw(case)
    )
    ref = grad_weight_reference(x64, g64, w.shape, **gk)
    assert_close(dw, ref, grad_weight_reference(abs(x64), abs(g64), w.shape, **gk), "float32", "numpy")


# (input dilation, kernel dilation, stride, (pad_lo, pad_hi), flip): the transposed form flipped or
# not, the forward form flipped (taps reversed) with a stride.
GENERAL = [
    ((2, 2, 1), (1, 1, 1), (1, 1, 1), ((1, 1, 0), (2, 1, 1)), False),
    ((2, 1, 3), (1, 2, 1), (1, 1, 1), ((0, 1, 2), (1, 0, 2)), True),
    ((1, 1, 1), (1, 1, 2), (2, 1, 2), ((1, 1, 0), (0, 1, 2)), True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idil, kdil, stride, pad, flip", GENERAL)
def test_conv_general_and_its_weight_gradient(idil, kdil, stride, pad, flip, dtype):
    """The forward against conv_general_reference; the weight gradient by
    <dW, V> = <dy, conv_general(x, V)> for a random V, in float64."""
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 4, 3, 6, generator=gen).to(DTYPES[dtype])
    w = torch.randn(4, 3, 2, 3, 3, generator=gen).to(DTYPES[dtype])
    kw = dict(stride=stride, padding=pad, kernel_dilation=kdil, input_dilation=idil, groups=2, flip=flip)
    rk = dict(
        stride=stride,
        pad_lo=pad[0],
        pad_hi=pad[1],
        kernel_dilation=kdil,
        input_dilation=idil,
        groups=2,
        flip=flip,
    )
    y = vc.conv_general(x.cuda(), w.cuda(), **kw)
    x64, w64 = _np(x), _np(w)
    ref = conv_general_reference(x64, w64, **rk)
    assert y.shape == ref.shape
    assert_close(_np(y), ref, conv_general_reference(abs(x64), abs(w64), **rk), dtype, "conv_general")
    gy = torch.randn(*ref.shape, generator=gen).to(DTYPES[dtype])
    dw = _training._conv_general_grad_weight(x.cuda(), gy.cuda(), tuple(w.shape), **kw)
    v = np.random.default_rng(3).standard_normal(w.shape)
    g64 = _np(gy)
    lhs = float((_np(dw) * v).sum())
    rhs = float((g64 * conv_general_reference(x64, v, **rk)).sum())
    bound = float((abs(g64) * conv_general_reference(abs(x64), abs(v), **rk)).sum())
    tol = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}[dtype]
    assert abs(lhs - rhs) <= tol * bound, (lhs, rhs, bound)


def test_input_dilation_with_a_stride_is_refused_by_name():
    x = torch.randn(1, 4, 4, 4, 4, device="cuda")
    w = torch.randn(8, 2, 2, 2, 4, device="cuda")
    with pytest.raises(
        ValueError,
        match=r"^\[conv_general\] cuDNN runs a convolution with input dilation \(conv_transpose3d, conv_general\) "
        r"only at stride 1, but got stride \(2, 2, 2\) with input dilation \(2, 2, 2\); run it on the cpu",
    ):
        vc.conv_general(x, w, stride=2, input_dilation=2)
