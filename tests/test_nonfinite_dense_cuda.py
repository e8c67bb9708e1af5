"""The CUDA route's cuDNN path (dense and grouped problems) by the padding
rule (README, "Differences from MLX and PyTorch"), as on the CPU: conv3d
and its weight gradient multiply the zero padding (0 * NaN = NaN, as in
torch); conv3d_grad_input and conv_transpose3d scatter real elements only,
so a NaN / inf weight never meets a zero there. cuDNN's engines do not all
do so (session 20, tests/cuda/dense_nonfinite_probe.py on the H200): the
deterministic float32 weight-gradient engine left the padding's products
out, the 16-bit input gradient and every transposed conv multiplied the
padding, the float16 forward lost a -inf weight's -inf outputs.
csrc/cuda/dense_nonfinite.cu redoes what the rule decides after cuDNN.
The data problems' input is finite here (their non-finite values are in
the weight): the fix-up redoes the channels of non-finite weights only, and
cuDNN's float16 fprop engine (the transposed conv's) also lost the -inf
outputs of a -inf input element (session 20), which is left as cuDNN does.
The weight gradients of conv_transpose3d and conv_general follow the skip
rule (a non-finite element never meets a zero). In the forward form (no
input dilation: conv_general's, a stride-1 transposed conv's) cuDNN's 16-bit
engine multiplied the padding (session 21: 368 NaN too many in the dense
case), so the fix-up recomputes those taps there (cuda_plan::nonfinite_fix);
the swapped form (conv_general's with input dilation, a strided transposed
conv's) gets none, so those cases check that cuDNN leaves the products out.
Against the float64 references of reference.py / reference_training.py:
the non-finite masks equal, the finite values close. Skips without a CUDA
GPU."""

from __future__ import annotations

import numpy as np
import pytest
from cuda_torch import torch_on_cuda
from reference_training import (
    assert_close,
    assert_same_nonfinite,
    conv3d_grad_input_reference,
    conv3d_grad_weight_reference,
    conv_general_grad_weight_skip_reference,
    conv_transpose3d_grad_weight_skip_reference,
    conv_transpose3d_reference,
)

import volconv as vc

from reference import conv3d_reference

# (size, c_in, c_out, groups, stride, dilation), kernel 3, padding 1.
CASES = {
    "dense": ((5, 6, 7), 8, 16, 1, (1, 1, 1), (1, 1, 1)),
    "grouped-strided-dilated": ((7, 8, 9), 8, 12, 2, (2, 1, 2), (1, 2, 1)),
}
DIRECTIONS = ("forward", "grad_input", "grad_weight", "transpose")
# The skip-rule weight gradients: the transposed conv's (from gy's size back
# to x's: input gy, output gradient x), conv_general's without and with an
# input dilation (cuDNN refuses one together with a stride: stride 1 there).
SKIP_RULE_WGRADS = ("transpose_grad_weight", "general_grad_weight", "general_dilated_grad_weight")
INPUT_DILATION = (2, 1, 2)


def _poison_weight(w):
    # A corner tap, the far corner, an edge's tap: each meets the padding
    # at some outputs and real elements at others.
    for spot, value in (((0, 0, 0, 0, 0), np.nan), ((3, 2, 2, 2, 1), np.inf), ((5, 0, 1, 2, 2), -np.inf)):
        w[spot] = value
    return w


def _poison_output_gradient(gy):
    """On the border along each axis (their windows reach the padding), a
    corner, and one inside (meets no padding)."""
    d, h, w = gy.shape[1:4]
    for n, spot, ch, value in (
        (0, (0, h // 2, w // 2), 1, np.nan),
        (1, (d // 2, h - 1, w // 2), 4, np.inf),
        (0, (d // 2, h // 2, 0), 7, -np.inf),
        (1, (d - 1, h - 1, w - 1), 9, np.nan),
        (0, (d // 2, h // 2, w // 2), 11, np.inf),
    ):
        gy[(n, *spot, ch)] = value
    return gy


def _operands(size, cin, cout, groups, stride, dilation, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *size, cin))
    out = [(n + 2 - dl * 2 - 1) // s + 1 for n, s, dl in zip(size, stride, dilation)]
    gy = rng.standard_normal((2, *out, cout))
    gy_finite = gy.copy()  # the data problems' input
    _poison_output_gradient(gy)
    weight = _poison_weight(rng.standard_normal((cout, 3, 3, 3, cin // groups)))
    # conv_transpose3d from gy's size back to x's: (C_out', k..., C_in'/groups).
    weight_t = _poison_weight(rng.standard_normal((cin, 3, 3, 3, cout // groups)))
    return x, gy, gy_finite, weight, weight_t


def _output_padding(x, g, kw):
    """The transposed conv's output_padding that takes g's size back to x's."""
    k = 3
    return tuple(
        n - ((o - 1) * s - 2 * kw["padding"] + dl * (k - 1) + 1)
        for n, o, s, dl in zip(x.shape[1:4], g.shape[1:4], kw["stride"], kw["dilation"])
    )


def _skip_rule_operands(direction, case, seed=7):
    """(x, gy, weight shape, the op's keywords) of a skip-rule weight
    gradient, x and gy float64 numpy arrays, the NaN / inf in the operand
    whose elements meet the padding."""
    size, cin, cout, groups, stride, dilation = CASES[case]
    x, gy, _, w, wt = _operands(*CASES[case], seed=seed)
    if direction == "transpose_grad_weight":
        kw = dict(stride=stride, padding=1, dilation=dilation, groups=groups)
        kw["output_padding"] = _output_padding(x, gy, kw)
        # The transposed conv's input is gy (it holds the NaN / inf), its
        # output gradient x.
        return gy, x, wt.shape, kw
    idil = INPUT_DILATION if direction == "general_dilated_grad_weight" else (1, 1, 1)
    step = (1, 1, 1) if direction == "general_dilated_grad_weight" else stride
    out = [((n - 1) * i + 1 + 2 - dl * 2 - 1) // s + 1 for n, i, s, dl in zip(size, idil, step, dilation)]
    gy = _poison_output_gradient(np.random.default_rng(seed).standard_normal((2, *out, cout)))
    kw = dict(stride=step, padding=1, kernel_dilation=dilation, input_dilation=idil, groups=groups)
    return x, gy, w.shape, kw


def _skip_rule_reference(direction, x, g, shape, kw):
    if direction == "transpose_grad_weight":
        return conv_transpose3d_grad_weight_skip_reference(
            x, g, shape, kw["stride"], (1, 1, 1), kw["dilation"], kw["groups"]
        )
    return conv_general_grad_weight_skip_reference(
        x, g, shape, kw["stride"], (1, 1, 1), kw["kernel_dilation"], kw["input_dilation"], kw["groups"]
    )


def _skip_rule_run(direction, x, g, shape, kw):
    if direction == "transpose_grad_weight":
        return vc._training._conv_transpose3d_grad_weight(x, g, tuple(shape), **kw)
    return vc._training._conv_general_grad_weight(x, g, tuple(shape), **kw)


def _check(ours, ref, scale, dtype, what):
    assert_same_nonfinite(ours, ref, what)
    ok = np.isfinite(ref)
    assert ok.sum() > 0 and (~ok).sum() > 0, "the case must have finite and non-finite results"
    assert_close(ours[ok], ref[ok], scale[ok], dtype, what)


def _finite(a):
    return np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0, neginf=0.0)


def _run(direction, x, g, gf, w, wt, kw):
    if direction == "forward":
        return vc.conv3d(x, w, **kw)
    if direction == "grad_input":
        return vc.conv3d_grad_input(gf, w, tuple(x.shape), **kw)
    if direction == "grad_weight":
        return vc.conv3d_grad_weight(x, g, tuple(w.shape), **kw)
    return vc.conv_transpose3d(gf, wt, **kw)


def _reference(direction, x, g, gf, w, wt, rk):
    if direction == "forward":
        return conv3d_reference(x, w, **rk)
    if direction == "grad_input":
        return conv3d_grad_input_reference(gf, w, x.shape, **rk)
    if direction == "grad_weight":
        return conv3d_grad_weight_reference(x, g, w.shape, **rk)
    return conv_transpose3d_reference(gf, wt, **rk)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES)
def test_cudnn_path_follows_the_rule(case, dtype, direction):
    torch = torch_on_cuda()  # skips without a CUDA GPU for volconv
    size, cin, cout, groups, stride, dilation = CASES[case]
    ops = [torch.from_numpy(a).to(getattr(torch, dtype)).cuda() for a in _operands(*CASES[case])]
    kw = dict(stride=stride, padding=1, dilation=dilation, groups=groups)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        got = _run(direction, *ops, kw)
        torch.cuda.synchronize()
    ran = sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})
    if any("dw_data" in name or "dw_wgrad" in name for name in ran):
        pytest.fail(f"expected the cuDNN route, got the depthwise kernels: {ran}")
    # The references read exactly what cuDNN read: the rounded values.
    o64 = [a.double().cpu().numpy() for a in ops]
    rk = dict(stride=stride, pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), dilation=dilation, groups=groups)
    ref = _reference(direction, *o64, rk)
    scale = _reference(direction, *(_finite(a) for a in o64), rk)
    _check(got.double().cpu().numpy(), ref, scale, dtype, f"cuda {case} {direction} {dtype}")


@pytest.mark.parametrize("direction", SKIP_RULE_WGRADS)
@pytest.mark.parametrize("case", CASES)
def test_cpu_skip_rule_weight_gradients(case, direction):
    # The CPU implements the rule: this checks the references and the cases.
    x, g, shape, kw = _skip_rule_operands(direction, case)
    x, g = x.astype(np.float32), g.astype(np.float32)
    ref = _skip_rule_reference(direction, x, g, shape, kw)
    scale = _skip_rule_reference(direction, _finite(x), _finite(g), shape, kw)
    got = np.asarray(_skip_rule_run(direction, x, g, shape, kw), np.float64)
    _check(got, ref, scale, "float32", f"cpu {case} {direction}")


@pytest.mark.parametrize("direction", SKIP_RULE_WGRADS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("case", CASES)
def test_cudnn_skip_rule_weight_gradients(case, dtype, direction):
    torch = torch_on_cuda()  # skips without a CUDA GPU for volconv
    x, g, shape, kw = _skip_rule_operands(direction, case)
    x, g = (torch.from_numpy(a).to(getattr(torch, dtype)).cuda() for a in (x, g))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        got = _skip_rule_run(direction, x, g, shape, kw)
        torch.cuda.synchronize()
    ran = sorted({e.name for e in prof.events() if e.device_type.name == "CUDA"})
    if any("dw_data" in name or "dw_wgrad" in name for name in ran):
        pytest.fail(f"expected the cuDNN route, got the depthwise kernels: {ran}")
    x64, g64 = (a.double().cpu().numpy() for a in (x, g))
    ref = _skip_rule_reference(direction, x64, g64, shape, kw)
    scale = _skip_rule_reference(direction, _finite(x64), _finite(g64), shape, kw)
    _check(got.double().cpu().numpy(), ref, scale, dtype, f"cuda {case} {direction} {dtype}")
