"""Where a non-finite weight (and, for the weight gradient, a non-finite
output-gradient element) lands in depthwise conv3d and its gradients, on
the CPU and on each CUDA depthwise kernel, against the float64 references
of reference_training.py, which implement the documented rule (README,
"Differences from MLX and PyTorch"): conv3d and its weight gradient
multiply the zero padding (0 * NaN = NaN reaches the border outputs, as in
PyTorch), conv3d_grad_input scatters real elements only (PyTorch's input
gradient), so a NaN weight never meets the padding there. The weight
gradients of conv_transpose3d and conv_general leave the padding out too:
a non-finite output-gradient element reaches only the taps whose reads stay
inside the input (reference_training's skip-rule references).

The non-finite values sit where they meet the padding along one axis each
(a corner tap, a face's tap, the far corner), and one at the centre tap
(every output of its channel). The CPU runs in float32 (it implements the
rule: this also checks the test). On CUDA each case names the kernel it
must run (torch's profiler). Session 19 found by reading the kernels that
they did not follow the rule: each skipped the padding along some axes and
multiplied it along others (generic: skipped all; row3: skipped D and H,
multiplied W; tiled and pairs: skipped D, multiplied H and W). Session 20
ran the 33 CUDA cases on an H200 with the fix (depthwise_nonfinite.cuh):
all passed. Before it, reading the kernels said 30 of them would fail."""

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
)

import volconv as vc

from reference import conv3d_reference

# (name, size, channels, stride): which CUDA kernel runs each follows from
# the planner's rules (csrc/cuda/depthwise_plan.cpp): 32 channels in chunks
# -> tiled; 128 channels of 16 bits over 17 x 17 x 2 tiles -> pairs (578
# blocks of 64 channels); 30 channels (no 16-byte chunks) -> row3; a stride
# along W -> the generic kernels.
CASES = {
    "tiled": ((4, 12, 12), 32, (1, 1, 1)),
    "pairs": ((1, 130, 130), 128, (1, 1, 1)),
    "row3": ((4, 10, 20), 30, (1, 1, 1)),
    "generic": ((4, 10, 20), 16, (1, 1, 2)),
}
# The CUDA kernel names (substrings) each case must run, per direction.
KERNELS = {
    "tiled": ("dw_data_tiled", "dw_data_tiled", "dw_wgrad_tiled"),
    "pairs": ("dw_data_pairs", "dw_data_pairs", "dw_wgrad_tiled"),
    "row3": ("dw_data_row3", "dw_data_row3", "dw_wgrad_row3"),
    "generic": ("dw_data<", "dw_data<", "dw_wgrad_partial"),
}
# The weight gradients that leave the padding out run on the generic
# kernels whatever the geometry (the planner's padding_multiplied: the row3
# and tiled weight gradients multiply their zero halo).
SKIP_RULE_WGRAD_KERNEL = "dw_wgrad_partial"
DIRECTIONS = ("forward", "grad_input", "grad_weight", "transpose_grad_weight", "general_grad_weight")


def _kernel(case, direction):
    if direction in ("transpose_grad_weight", "general_grad_weight"):
        return SKIP_RULE_WGRAD_KERNEL
    return KERNELS[case][DIRECTIONS.index(direction)]


def _operands(size, c, stride, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, *size, c))
    w = rng.standard_normal((c, 3, 3, 3, 1))
    out = [(n + 2 - 3) // s + 1 for n, s in zip(size, stride)]
    gy = rng.standard_normal((1, *out, c))
    # Weights: a corner tap (meets the low D, H and W padding at different
    # outputs), the far corner, a tap on an edge, the centre.
    for ch, tap, value in (
        (3, (0, 0, 0), np.nan),
        (7, (2, 2, 2), np.inf),
        (11, (0, 1, 2), -np.inf),
        (12, (1, 1, 1), np.nan),
    ):
        w[(ch, *tap, 0)] = value
    # Output-gradient elements on the volume's border (each window there
    # reaches the padding), one per axis, and one inside.
    d, h, wd = out
    for ch, spot, value in (
        (5, (0, 0, 0), np.nan),
        (9, (d - 1, h // 2, wd // 2), np.inf),
        (2, (d // 2, 0, wd - 1), -np.inf),
        (13, (d // 2, h // 2, wd // 2), np.nan),
    ):
        gy[(0, *spot, ch)] = value
    return x, w, gy


def _reference(direction, x, w, gy, stride):
    """The direction's float64 result and its scale (the same sum of the
    absolute values, non-finite ones as 0) for the error bound."""
    kw = dict(stride=stride, pad_lo=(1, 1, 1), pad_hi=(1, 1, 1), groups=x.shape[-1])

    def finite(a):
        return np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0, neginf=0.0)

    if direction == "forward":
        return conv3d_reference(x, w, **kw), conv3d_reference(finite(x), finite(w), **kw)
    if direction == "grad_input":
        return (
            conv3d_grad_input_reference(gy, w, x.shape, **kw),
            conv3d_grad_input_reference(finite(gy), finite(w), x.shape, **kw),
        )
    if direction == "grad_weight":
        return (
            conv3d_grad_weight_reference(x, gy, w.shape, **kw),
            conv3d_grad_weight_reference(finite(x), finite(gy), w.shape, **kw),
        )
    # The skip-rule weight gradients; the transposed conv runs from gy's size
    # back to x's (input gy, output gradient x).
    c = x.shape[-1]
    if direction == "transpose_grad_weight":
        return tuple(
            conv_transpose3d_grad_weight_skip_reference(a, b, w.shape, stride, (1, 1, 1), (1, 1, 1), c)
            for a, b in ((gy, x), (finite(gy), finite(x)))
        )
    return tuple(
        conv_general_grad_weight_skip_reference(a, b, w.shape, stride, (1, 1, 1), (1, 1, 1), (1, 1, 1), c)
        for a, b in ((x, gy), (finite(x), finite(gy)))
    )


def _run(direction, x, w, gy, stride):
    kw = dict(stride=stride, padding=1, groups=x.shape[-1])
    if direction == "forward":
        return vc.conv3d(x, w, **kw)
    if direction == "grad_input":
        return vc.conv3d_grad_input(gy, w, tuple(x.shape), **kw)
    if direction == "grad_weight":
        return vc.conv3d_grad_weight(x, gy, tuple(w.shape), **kw)
    if direction == "general_grad_weight":
        return vc._training._conv_general_grad_weight(x, gy, tuple(w.shape), **kw)
    # The transposed conv from gy's size back to x's (output_padding where a
    # stride leaves x's last elements unread).
    extra = tuple(n - ((o - 1) * s + 1) for n, o, s in zip(x.shape[1:4], gy.shape[1:4], stride))
    return vc._training._conv_transpose3d_grad_weight(gy, x, tuple(w.shape), output_padding=extra, **kw)


def _check(got, ref, scale, dtype, what):
    assert_same_nonfinite(got, ref, what)
    finite = np.isfinite(ref)
    assert_close(got[finite], ref[finite], scale[finite], dtype, what)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", CASES)
def test_cpu_follows_the_rule(case, direction):
    size, c, stride = CASES[case]
    x, w, gy = _operands(size, c, stride)
    x32, w32, gy32 = (a.astype(np.float32) for a in (x, w, gy))
    ref, scale = _reference(direction, *(a.astype(np.float64) for a in (x32, w32, gy32)), stride)
    got = np.asarray(_run(direction, x32, w32, gy32, stride), np.float64)
    _check(got, ref, scale, "float32", f"cpu {case} {direction}")


def _cuda_params():
    for case in CASES:
        for direction in DIRECTIONS:
            for dtype in ("float32", "bfloat16", "float16"):
                if case == "pairs" and dtype == "float32":
                    continue  # the pairs kernel is 16-bit only
                yield pytest.param(case, direction, dtype, id=f"{case}-{direction}-{dtype}")


@pytest.mark.parametrize(("case", "direction", "dtype"), list(_cuda_params()))
def test_cuda_follows_the_rule(case, direction, dtype):
    torch = torch_on_cuda()  # skips without a CUDA GPU for volconv
    size, c, stride = CASES[case]
    tdt = getattr(torch, dtype)
    x, w, gy = (torch.from_numpy(a).to(tdt).cuda() for a in _operands(size, c, stride))
    # The reference reads exactly what the kernels read: the rounded values.
    ref, scale = _reference(direction, *(a.double().cpu().numpy() for a in (x, w, gy)), stride)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        got = _run(direction, x, w, gy, stride)
        torch.cuda.synchronize()
    ran = {e.name for e in prof.events() if e.device_type.name == "CUDA"}
    want = _kernel(case, direction)
    if not any(want in name for name in ran):
        pytest.fail(f"expected {want} to run, got {sorted(ran)}")
    _check(got.double().cpu().numpy(), ref, scale, dtype, f"cuda {case} {direction} {dtype}")
