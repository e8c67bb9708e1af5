"""The Metal parity suite: volconv on a real Apple GPU against the float64
reference, over the shared sweep (cases.py) and the host's buffer paths.
Runs only where vc.is_available(vc.gpu) (a Mac with an Apple7+ GPU); CI's
macOS job selects it with `-m metal_gpu`."""

from __future__ import annotations

import sys

import numpy as np
import pytest

vc = pytest.importorskip("volconv")
if not hasattr(vc, "conv3d"):
    pytest.skip("volconv is not installed (only a partial package was found)", allow_module_level=True)

from cases import CASES  # noqa: E402
from conftest import cast  # noqa: E402
from reference import assert_conv_close  # noqa: E402

# Metal only (a CUDA GPU is vc.gpu on NVIDIA machines: tests/test_cuda_depthwise.py).
_WHY_NO_GPU = vc.unavailable_reason(vc.gpu) or (sys.platform != "darwin" and "the GPU here is not Metal")
pytestmark = [pytest.mark.metal_gpu, pytest.mark.skipif(bool(_WHY_NO_GPU), reason=_WHY_NO_GPU)]
GPU_DTYPES = ["float32", "float16", "bfloat16"]


@pytest.mark.parametrize("dtype", GPU_DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cases_match_reference_on_gpu(case, dtype):
    x, w = case.inputs(seed=0)
    x, w = cast(x, dtype), cast(w, dtype)
    y = vc.conv3d(x, w, **case.api_kwargs(), stream=vc.gpu)
    assert_conv_close(y, x, w, dtype, **case.params())


def _page_aligned(shape, dtype):
    """A C-contiguous array starting on a 16 KiB page: the zero-copy path."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(int(np.prod(shape)) * itemsize + 16384, dtype=np.uint8)
    start = -raw.ctypes.data % 16384
    return raw[start : start + int(np.prod(shape)) * itemsize].view(dtype).reshape(shape)


def test_zero_copy_and_staged_inputs_agree():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 7, 8, 16)).astype(np.float32)
    w = rng.standard_normal((24, 3, 3, 3, 16)).astype(np.float32)
    xa, wa = _page_aligned(x.shape, np.float32), _page_aligned(w.shape, np.float32)
    xa[...], wa[...] = x, w
    aligned = vc.conv3d(xa, wa, padding=1, stream=vc.gpu)
    shifted = np.empty(x.size + 1, np.float32)[1:].reshape(x.shape)  # 4 bytes past any page
    shifted[...] = x
    unaligned = vc.conv3d(shifted, w, padding=1, stream=vc.gpu)
    strided = np.empty((2, 6, 7, 8, 32), np.float32)[..., ::2]
    strided[...] = x
    transposed = np.ascontiguousarray(w.transpose(1, 2, 3, 4, 0)).transpose(4, 0, 1, 2, 3)
    staged = vc.conv3d(strided, transposed, padding=1, stream=vc.gpu)
    assert_conv_close(aligned, x, w, "float32", pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))
    assert np.array_equal(aligned, unaligned) and np.array_equal(aligned, staged)


def test_mixed_dtypes_are_converted_once():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 5, 5, 5, 8)).astype(np.float16)
    w = rng.standard_normal((8, 3, 3, 3, 8)).astype(ml_dtypes.bfloat16)
    y = vc.conv3d(x, w, stream=vc.gpu)
    assert y.dtype == np.float32
    assert_conv_close(y, x, w, "float32")


def test_float64_is_refused_with_a_clear_error():
    x = np.ones((1, 3, 3, 3, 2))
    with pytest.raises(ValueError, match="float64"):
        vc.conv3d(x, np.ones((2, 1, 1, 1, 2)), stream=vc.gpu)


def test_streams_and_synchronize():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 6, 6, 6, 4)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3, 4)).astype(np.float32)
    s = vc.new_stream(vc.gpu)
    y = vc.conv3d(x, w, stream=s)
    vc.synchronize(s)
    with vc.stream(vc.gpu):
        z = vc.conv3d(x, w)
    vc.synchronize()
    assert np.array_equal(y, z)
    assert_conv_close(y, x, w, "float32")


def test_mlx_arrays_on_the_gpu():
    mx = pytest.importorskip("mlx.core")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 6, 6, 8)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 3, 8)).astype(np.float32)
    y = vc.conv3d(mx.array(x), mx.array(w), padding=1, stream=mx.gpu)
    assert isinstance(y, mx.array)
    assert_conv_close(np.array(y), x, w, "float32", pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


@pytest.mark.parametrize(
    "padding,mode",
    [(((2, 1, 1), (0, 1, 1)), "replicate"), (1, ("reflect", "circular", "replicate"))],
    ids=["causal_replicate", "mixed"],
)
def test_input_gradient_with_a_padding_mode(padding, mode):
    """The GPU's border fold (conv_training_fold.metal) gives the CPU's input
    gradient (itself checked against torch in tests/test_padding_modes.py)."""
    rng = np.random.default_rng(3)
    x_shape, w = (2, 4, 5, 6, 3), rng.uniform(-1, 1, (5, 3, 3, 3, 3)).astype(np.float32)
    y = vc.conv3d(np.zeros(x_shape, np.float32), w, padding=padding, padding_mode=mode)
    gy = rng.uniform(-1, 1, np.asarray(y).shape).astype(np.float32)
    kw = dict(padding=padding, padding_mode=mode)
    gpu = vc.conv3d_grad_input(gy, w, x_shape, **kw, stream=vc.gpu)
    cpu = vc.conv3d_grad_input(gy, w, x_shape, **kw, stream=vc.cpu)
    np.testing.assert_allclose(np.asarray(gpu), np.asarray(cpu), rtol=1e-5, atol=1e-5)
