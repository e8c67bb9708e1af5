"""The CUDA backend's cuDNN route (csrc/cuda/cudnn_*): conv3d's forward,
input gradient and weight gradient that are not depthwise, on the device
tool's H200, through cuDNN's graph API and its legacy calls, against the
float64 reference and torch's own CUDA conv and autograd, over groups,
strides, dilations, asymmetric padding, strided views and every dtype; one
kept graph plan per direction; a bit-identical weight gradient; the
deterministic switch; what it refuses.
The loader's message for a missing cuDNN runs everywhere (no GPU needed):
a subprocess points the search at a bad directory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference_training import (
    assert_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)

import volconv as vc

from reference import conv3d_reference


def _run(code: str) -> str:
    """Runs code in a fresh interpreter (no torch, so no cuDNN already loaded)."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_missing_cudnn_names_the_op_where_it_looked_and_how_to_install(tmp_path):
    """A directory without the library and one whose libcudnn.so.9 is not a
    library: both named with the loader's reason, then the install hint."""
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "libcudnn.so.9").write_text("not a shared library")
    dirs = [str(tmp_path / "none"), str(tmp_path / "bad")]
    msg = _run(f"import volconv; print(volconv._core._cudnn_probe('conv3d_grad_input', {dirs!r}, False))")
    assert msg.startswith(
        "[conv3d_grad_input] The CUDA backend runs convolutions other than depthwise on cuDNN 9, which could not "
        f"be loaded: tried {dirs[0]}/libcudnn.so.9 ("
    ), msg
    assert f"{dirs[1]}/libcudnn.so.9 (" in msg
    assert "pip install nvidia-cudnn-cu13" in msg and msg.endswith("(stream=volconv.cpu).")
    assert "system loader" not in msg
    # Asking the system loader too adds it to the list (it finds nothing here, or cuDNN: then no message).
    msg = _run(f"import volconv; print(volconv._core._cudnn_probe('conv3d', {dirs[:1]!r}, True))")
    assert msg == "" or "the system loader's libcudnn.so.9 (" in msg


def test_search_dirs_are_the_wheels_lib_directories(tmp_path):
    """nvidia/cudnn/lib under a sys.path entry is searched; a missing one is not listed."""
    lib = tmp_path / "site" / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    out = _run(
        f"""
        import sys, json
        sys.path.insert(0, {str(tmp_path / "site")!r})
        sys.path.insert(0, {str(tmp_path / "empty")!r})
        from volconv._cuda import cudnn_search_dirs
        print(json.dumps(cudnn_search_dirs()))
        """
    )
    dirs = json.loads(out)
    assert str(lib) in dirs
    assert not any(d.startswith(str(tmp_path / "empty")) for d in dirs)


def test_set_cuda_deterministic_takes_a_bool_and_is_read_back():
    """Off by default (torch's cudnn.deterministic); a bool only, by name."""
    assert vc.cuda_deterministic() is False
    with pytest.raises(TypeError, match=r"\[set_cuda_deterministic\] Expected enabled to be a bool, got int"):
        vc.set_cuda_deterministic(1)
    vc.set_cuda_deterministic(True)
    try:
        assert vc.cuda_deterministic() is True
    finally:
        vc.set_cuda_deterministic(False)
    assert vc.cuda_deterministic() is False


torch = pytest.importorskip("torch")
_gpu = torch.cuda.is_available() and vc._core._gpu_backend() == "cuda"
gpu = pytest.mark.skipif(not _gpu, reason=f"no CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu)}")
if _gpu:
    torch.backends.cudnn.allow_tf32 = False  # torch's float32 conv in float32, as ours
import torch.nn.functional as F  # noqa: E402

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# (N, (D, H, W), C_in, C_out, groups, kernel, stride, (pad_lo, pad_hi), dilation): symmetric
# padding; low > high (a cropped output / padded gradient) with stride 2; low < high at stride 1;
# dilation with groups 2; a 1x1x1 kernel; C_in 3 (no vector of channels).
CASES = [
    (2, (5, 6, 7), 8, 16, 1, (3, 3, 3), (1, 1, 1), ((1, 1, 1), (1, 1, 1)), (1, 1, 1)),
    (1, (7, 8, 9), 6, 4, 2, (3, 2, 3), (2, 1, 2), ((1, 0, 2), (0, 1, 1)), (1, 1, 1)),
    (1, (6, 5, 6), 3, 5, 1, (2, 2, 2), (1, 1, 1), ((0, 0, 0), (1, 1, 1)), (1, 1, 1)),
    (2, (6, 7, 8), 4, 8, 2, (3, 3, 3), (1, 2, 1), ((2, 1, 2), (2, 1, 2)), (2, 1, 2)),
    (1, (4, 5, 6), 16, 24, 1, (1, 1, 1), (2, 2, 2), ((0, 0, 0), (0, 0, 0)), (1, 1, 1)),
]


def case_id(case):
    n, size, ci, co, g, k, s, (lo, hi), d = case
    return f"n{n}-c{ci}to{co}-g{g}-k{''.join(map(str, k))}-s{''.join(map(str, s))}-lo{''.join(map(str, lo))}-hi{''.join(map(str, hi))}-d{''.join(map(str, d))}"


def _out(size, k, s, lo, hi, d):
    return tuple((size[i] + lo[i] + hi[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3))


def _operands(case, dtype, seed=0):
    """Rounded to dtype on the CPU first, so the reference sees what cuDNN reads."""
    n, size, ci, co, g, k, s, (lo, hi), d = case
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *size, ci, generator=gen).to(DTYPES[dtype])
    w = torch.randn(co, *k, ci // g, generator=gen).to(DTYPES[dtype])
    gy = torch.randn(n, *_out(size, k, s, lo, hi, d), co, generator=gen).to(DTYPES[dtype])
    return x, w, gy


def _np(t):
    return t.detach().cpu().double().numpy()


def _kw(case):
    _, _, _, _, g, _, s, (lo, hi), d = case
    return dict(stride=s, padding=(lo, hi), dilation=d, groups=g)


def _ref_kw(case):
    _, _, _, _, g, _, s, (lo, hi), d = case
    return dict(stride=s, pad_lo=lo, pad_hi=hi, dilation=d, groups=g)


def _torch_directions(case, x, w, gy):
    """torch's CUDA conv3d (F.pad for the asymmetric padding) and its autograd, in volconv's layout."""
    _, _, _, _, g, _, s, (lo, hi), d = case
    xt = x.cuda().permute(0, 4, 1, 2, 3).requires_grad_(True)
    wt = w.cuda().permute(0, 4, 1, 2, 3).requires_grad_(True)
    yt = F.conv3d(F.pad(xt, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0])), wt, stride=s, dilation=d, groups=g)
    dx, dw = torch.autograd.grad(yt, (xt, wt), gy.cuda().permute(0, 4, 1, 2, 3))
    return tuple(t.detach().permute(0, 2, 3, 4, 1) for t in (yt, dx, dw))


def _agree(mine, theirs, scale, dtype, what):
    """Within twice the reference tolerance of torch's result (both round once per element)."""
    assert_close(_np(mine), _np(theirs), 2 * scale, dtype, f"{what} vs torch")


@pytest.fixture(params=["graph", "legacy"])
def cudnn_api(request):
    """Runs a test through cuDNN's graph API (kept execution plans, the
    default) and again through its legacy calls (the fallback)."""
    vc._core._cudnn_use_graph(request.param == "graph")
    yield request.param
    vc._core._cudnn_use_graph(True)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_direction_against_float64_and_torch(case, dtype, cudnn_api):
    x, w, gy = _operands(case, dtype)
    xc, wc, gyc = x.cuda(), w.cuda(), gy.cuda()
    rk = _ref_kw(case)
    y = vc.conv3d(xc, wc, **_kw(case))
    dx = vc.conv3d_grad_input(gyc, wc, tuple(x.shape), **_kw(case))
    dw = vc.conv3d_grad_weight(xc, gyc, tuple(w.shape), **_kw(case))
    for t in (y, dx, dw):
        assert isinstance(t, torch.Tensor) and t.device == xc.device and t.dtype == xc.dtype
    x64, w64, g64 = _np(x), _np(w), _np(gy)
    refs = (
        (conv3d_reference(x64, w64, **rk), conv3d_reference(abs(x64), abs(w64), **rk)),
        (
            conv3d_grad_input_reference(g64, w64, x.shape, **rk),
            conv3d_grad_input_reference(abs(g64), abs(w64), x.shape, **rk),
        ),
        (
            conv3d_grad_weight_reference(x64, g64, w.shape, **rk),
            conv3d_grad_weight_reference(abs(x64), abs(g64), w.shape, **rk),
        ),
    )
    theirs = _torch_directions(case, x, w, gy)
    for name, mine, (ref, scale), other in zip(
        ("forward", "grad_input", "grad_weight"), (y, dx, dw), refs, theirs
    ):
        assert_close(_np(mine), ref, scale, dtype, name)
        _agree(mine, other, scale, dtype, name)


@gpu
def test_views_of_any_strides_and_host_arrays():
    """torch's own layouts (an NCDHW-contiguous input and weight seen as
    NDHWC: staged through packed copies), a result written into a strided
    view's place, and numpy arrays with a GPU stream (copied in and back)."""
    case = CASES[1]
    x, w, gy = _operands(case, "float32", seed=3)
    rk = _ref_kw(case)
    x_ncdhw = x.permute(0, 4, 1, 2, 3).contiguous().cuda()
    w_oi = w.permute(0, 4, 1, 2, 3).contiguous().cuda()
    xv, wv = x_ncdhw.permute(0, 2, 3, 4, 1), w_oi.permute(0, 2, 3, 4, 1)
    assert not xv.is_contiguous()
    x64, w64, g64 = _np(x), _np(w), _np(gy)
    scale = conv3d_reference(abs(x64), abs(w64), **rk)
    assert_close(
        _np(vc.conv3d(xv, wv, **_kw(case))), conv3d_reference(x64, w64, **rk), scale, "float32", "views"
    )
    gyv = gy.permute(0, 4, 1, 2, 3).contiguous().cuda().permute(0, 2, 3, 4, 1)
    dw = vc.conv3d_grad_weight(xv, gyv, tuple(w.shape), **_kw(case))
    ref = conv3d_grad_weight_reference(x64, g64, w.shape, **rk)
    assert_close(
        _np(dw), ref, conv3d_grad_weight_reference(abs(x64), abs(g64), w.shape, **rk), "float32", "views"
    )
    s = vc.new_stream(vc.Device(vc.gpu, 0))
    y = vc.conv3d(x.numpy(), w.numpy(), stream=s, **_kw(case))
    assert isinstance(y, np.ndarray)
    assert_close(y, conv3d_reference(x64, w64, **rk), scale, "float32", "numpy")
    dx = vc.conv3d_grad_input(gy.numpy(), w.numpy(), tuple(x.shape), stream=s, **_kw(case))
    ref = conv3d_grad_input_reference(g64, w64, x.shape, **rk)
    assert_close(dx, ref, conv3d_grad_input_reference(abs(g64), abs(w64), x.shape, **rk), "float32", "numpy")


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_graph_api_runs_each_direction_with_one_kept_plan(dtype):
    """Each direction of a new problem builds one execution plan, and calling
    it again builds none (the plan is kept); with the graph API off, none."""
    g = torch.Generator(device="cuda").manual_seed(2)
    x = torch.randn(1, 6, 7, 9, 24, device="cuda", generator=g).to(DTYPES[dtype])
    w = torch.randn(40, 3, 3, 3, 24, device="cuda", generator=g).to(DTYPES[dtype])
    gy = torch.randn(1, 6, 7, 9, 40, device="cuda", generator=g).to(DTYPES[dtype])

    def directions():
        vc.conv3d(x, w, padding=1)
        vc.conv3d_grad_input(gy, w, tuple(x.shape), padding=1)
        vc.conv3d_grad_weight(x, gy, tuple(w.shape), padding=1)

    before = vc._core._cudnn_graph_plans_built()
    directions()
    assert vc._core._cudnn_graph_plans_built() == before + 3
    directions()
    assert vc._core._cudnn_graph_plans_built() == before + 3
    vc._core._cudnn_use_graph(False)
    try:
        x2 = x[:, :5].contiguous()  # a new problem value: the legacy calls build no plan
        vc.conv3d(x2, w, padding=1)
        assert vc._core._cudnn_graph_plans_built() == before + 3
    finally:
        vc._core._cudnn_use_graph(True)


@gpu
def test_dense_weight_gradient_is_bit_identical_run_to_run():
    """Deterministic engines are preferred: the same bits every time."""
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(2, 16, 24, 24, 32, device="cuda", generator=g)
    gy = torch.randn(2, 16, 24, 24, 48, device="cuda", generator=g)
    first = vc.conv3d_grad_weight(x, gy, (48, 3, 3, 3, 16), padding=1, groups=2)
    for _ in range(3):
        assert torch.equal(vc.conv3d_grad_weight(x, gy, (48, 3, 3, 3, 16), padding=1, groups=2), first)


@gpu
def test_set_cuda_deterministic_keeps_deterministic_engines_only():
    """The dense float32 conv_transpose3d (k2 s2): by default cuDNN's fastest
    engine, on the H200 one noted nondeterministic (0.28 against 0.80 ms);
    with set_cuda_deterministic(True) a new plan on a deterministic engine,
    the same bits every run, equal to the float64 reference as closely."""
    g = torch.Generator(device="cuda").manual_seed(3)
    x = torch.randn(2, 16, 32, 32, 64, device="cuda", generator=g)
    w = torch.randn(64, 2, 2, 2, 64, device="cuda", generator=g)
    x64, w64 = x.double().cpu().numpy(), w.double().cpu().numpy()
    ref = conv_transpose3d_reference(x64, w64, (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1), (0, 0, 0), 1)
    scale = conv_transpose3d_reference(
        abs(x64), abs(w64), (2, 2, 2), (0, 0, 0), (0, 0, 0), (1, 1, 1), (0, 0, 0), 1
    )
    plans, loose = vc._core._cudnn_graph_plans_built(), vc._core._cudnn_nondeterministic_plans_built()
    fast = vc.conv_transpose3d(x, w, stride=2)
    assert vc._core._cudnn_graph_plans_built() == plans + 1
    assert vc._core._cudnn_nondeterministic_plans_built() == loose + 1
    assert_close(fast.cpu().numpy(), ref, scale, "float32", "torch")
    vc.set_cuda_deterministic(True)
    try:
        first = vc.conv_transpose3d(x, w, stride=2)
        assert vc._core._cudnn_graph_plans_built() == plans + 2  # a plan of its own, not the fast one
        assert vc._core._cudnn_nondeterministic_plans_built() == loose + 1
        for _ in range(3):
            assert torch.equal(vc.conv_transpose3d(x, w, stride=2), first)
        assert_close(first.cpu().numpy(), ref, scale, "float32", "torch")
    finally:
        vc.set_cuda_deterministic(False)


@gpu
def test_what_the_cudnn_route_cannot_run_is_refused_by_name():
    x = torch.randn(1, 5, 5, 5, 4, device="cuda")
    w = torch.randn(8, 2, 2, 2, 4, device="cuda")
    with pytest.raises(ValueError, match=r"^\[conv3d\] The CUDA backend pads with zeros only"):
        vc.conv3d(x, w, padding=1, padding_mode="reflect")
    # Low padding 0, high 1 at stride 2: cuDNN's symmetric padding cannot place it.
    with pytest.raises(
        ValueError, match=r"^\[conv3d\] cuDNN pads both ends of an axis alike.*stream=volconv.cpu"
    ):
        vc.conv3d(x, w, stride=2, padding=((0, 0, 0), (1, 1, 1)))


@gpu
def test_missing_cudnn_raises_from_the_op():
    """The search pointed at a bad directory before the first call: the op raises the loader's message."""
    out = _run(
        """
        import numpy as np, volconv as vc
        vc._core._cudnn_set_search(["/nonexistent/cudnn/lib"], False)
        x, w = np.zeros((1, 4, 4, 4, 4), np.float32), np.zeros((8, 3, 3, 3, 4), np.float32)
        try:
            vc.conv3d(x, w, stream=vc.gpu)
        except ValueError as e:
            print(e)
        # depthwise problems need no cuDNN
        y = vc.conv3d(x, np.ones((4, 3, 3, 3, 1), np.float32), groups=4, stream=vc.gpu)
        print(y.shape)
        """
    )
    msg, shape = out.splitlines()
    assert msg.startswith(
        "[conv3d] The CUDA backend runs convolutions other than depthwise on cuDNN 9, which"
    )
    assert "tried /nonexistent/cudnn/lib/libcudnn.so.9 (" in msg and "pip install nvidia-cudnn-cu13" in msg
    assert shape == "(1, 2, 2, 2, 4)"
