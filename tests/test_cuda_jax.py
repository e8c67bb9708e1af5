"""JAX arrays on an NVIDIA GPU (volconv/_cuda_dlpack.py's route for DLPack
producers): read in place through DLPack, ordered after JAX's work on them
by DLPack's stream handshake, and the result handed back as a jax.Array on
the input's device. Results are compared with the float64 reference.
Skipped, with the reason, where JAX has no GPU or volconv no CUDA backend."""

from __future__ import annotations

import os

import numpy as np
import pytest
from reference_training import (
    assert_close,
    assert_conv3d_close,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_transpose3d_reference,
)

import volconv as vc

from reference import conv3d_reference

# JAX takes 75% of the GPU's memory at its first use unless told not to;
# other test modules in the same process allocate through torch.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
try:
    GPUS = jax.devices("gpu")
except RuntimeError as e:  # JAX without a CUDA plugin, or no GPU
    pytest.skip(f"JAX has no GPU here: {e}", allow_module_level=True)
if vc._core._gpu_backend() != "cuda":
    pytest.skip(f"no CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu)}", allow_module_level=True)

DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}
PAD1 = dict(pad_lo=(1, 1, 1), pad_hi=(1, 1, 1))


def _np(a):
    """A JAX array's values as float64 (through float32: NumPy has no bfloat16)."""
    return np.asarray(a.astype(jnp.float32), dtype=np.float64)


def _array(rng, shape, dtype, device=None):
    return jax.device_put(
        jnp.asarray(rng.standard_normal(shape, dtype=np.float32), dtype=DTYPES[dtype]), device
    )


def _is_jax_result(y, like):
    assert isinstance(y, jax.Array), type(y)
    assert y.dtype == like.dtype and y.devices() == like.devices()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [8, 1], ids=["depthwise", "dense"])  # volconv's kernels, cuDNN
def test_conv3d_of_jax_arrays(dtype, groups):
    rng = np.random.default_rng(1)
    x = _array(rng, (2, 5, 6, 7, 8), dtype)
    w = _array(rng, (8, 3, 3, 3, 8 // groups), dtype)
    y = vc.conv3d(x, w, padding=1, groups=groups)
    _is_jax_result(y, x)
    assert y.shape == (2, 5, 6, 7, 8)
    assert_conv3d_close(_np(y), _np(x), _np(w), dtype, groups=groups, **PAD1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_depthwise_gradients_of_jax_arrays(dtype):
    rng = np.random.default_rng(2)
    x = _array(rng, (1, 6, 7, 8, 16), dtype)
    w = _array(rng, (16, 3, 3, 3, 1), dtype)
    gy = _array(rng, (1, 6, 7, 8, 16), dtype)
    kw = dict(groups=16, **PAD1)
    gx = vc.conv3d_grad_input(gy, w, x.shape, padding=1, groups=16)
    _is_jax_result(gx, x)
    scale = conv3d_grad_input_reference(np.abs(_np(gy)), np.abs(_np(w)), x.shape, **kw)
    assert_close(_np(gx), conv3d_grad_input_reference(_np(gy), _np(w), x.shape, **kw), scale, dtype)
    gw = vc.conv3d_grad_weight(x, gy, w.shape, padding=1, groups=16)
    _is_jax_result(gw, w)
    scale = conv3d_grad_weight_reference(np.abs(_np(x)), np.abs(_np(gy)), w.shape, **kw)
    assert_close(_np(gw), conv3d_grad_weight_reference(_np(x), _np(gy), w.shape, **kw), scale, dtype)


def test_conv_transpose3d_of_jax_arrays():
    # The upsampling layer (kernel 2, stride 2): cuDNN's backward data.
    rng = np.random.default_rng(3)
    x = _array(rng, (1, 3, 4, 5, 8), "bfloat16")
    w = _array(rng, (16, 2, 2, 2, 8), "bfloat16")
    y = vc.conv_transpose3d(x, w, stride=2)
    _is_jax_result(y, x)
    assert y.shape == (1, 6, 8, 10, 16)
    scale = conv_transpose3d_reference(np.abs(_np(x)), np.abs(_np(w)), stride=(2, 2, 2))
    assert_close(_np(y), conv_transpose3d_reference(_np(x), _np(w), stride=(2, 2, 2)), scale, "bfloat16")


@pytest.mark.skipif(len(GPUS) < 2, reason="one GPU: the second device's case needs two")
def test_jax_arrays_on_the_second_gpu():
    rng = np.random.default_rng(4)
    x = _array(rng, (1, 4, 5, 6, 8), "float32", GPUS[1])
    w = _array(rng, (8, 3, 3, 3, 1), "float32", GPUS[1])
    y = vc.conv3d(x, w, padding=1, groups=8)
    _is_jax_result(y, x)
    assert_conv3d_close(_np(y), _np(x), _np(w), "float32", groups=8, **PAD1)


@jax.jit
def _after_slow_work(x0, a):
    # About 0.1 s of matrix products on an H200, then x0 times a factor that
    # is 1 only once they are done: x is not ready when the call is made.
    for _ in range(40):
        a = jnp.tanh(a @ a / a.shape[0] ** 0.5)
    return x0 * jnp.isfinite(a.sum()).astype(x0.dtype)


def test_the_call_is_ordered_after_jaxs_work():
    # JAX dispatches asynchronously: x's producing computation is still in
    # flight when vc.conv3d is called. volconv asks JAX (DLPack's stream=)
    # to make its stream wait for x, so the conv reads x's final values.
    rng = np.random.default_rng(5)
    x0 = _array(rng, (2, 8, 16, 16, 32), "float32")
    w = _array(rng, (32, 3, 3, 3, 1), "float32")
    a = _array(rng, (4096, 4096), "float32")
    x0.block_until_ready(), w.block_until_ready(), a.block_until_ready()
    x = _after_slow_work(x0, a)
    y = vc.conv3d(x, w, padding=1, groups=32)
    got = _np(y)
    assert_conv3d_close(got, _np(x0), _np(w), "float32", groups=32, **PAD1)  # x's values are x0's


def test_a_jax_function_takes_the_result():
    # The result is a jax.Array in memory of volconv's: jitted JAX code
    # reads it like any other of its arrays.
    rng = np.random.default_rng(6)
    x = _array(rng, (1, 4, 5, 6, 8), "float32")
    w = _array(rng, (8, 3, 3, 3, 1), "float32")
    y = vc.conv3d(x, w, padding=1, groups=8)
    total = jax.jit(lambda t: (2.0 * t).sum())(y)
    ref = conv3d_reference(_np(x), _np(w), groups=8, **PAD1)
    scale = conv3d_reference(np.abs(_np(x)), np.abs(_np(w)), groups=8, **PAD1)
    assert abs(float(total) - 2.0 * ref.sum()) <= 1e-4 * 2.0 * scale.sum()


def test_jax_arrays_are_refused_clearly():
    x = jnp.zeros((1, 4, 5, 6, 8), dtype=jnp.int32)
    w = jnp.zeros((8, 3, 3, 3, 1), dtype=jnp.float32)
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected the input to have a floating-point dtype"):
        vc.conv3d(x, w, groups=8)
    with pytest.raises(ValueError, match=r"\[conv3d\] Expected the weight to have 5 dimensions"):
        vc.conv3d(x.astype(jnp.float32), w[0], groups=8)
