"""The independent float64 reference every backend is checked against, and
the per-dtype tolerance. Written from the definition of convolution, sharing
nothing with the implementation: pad with zeros, then for each tap take the
strided window and contract channels per group with einsum."""

from __future__ import annotations

import numpy as np

# Allowed |error| as a fraction of sum(|x| * |w|) over the terms of each
# output: the rounding unit of the result dtype plus float32 accumulation.
TOLERANCE = {"float64": 1e-12, "float32": 2e-6, "float16": 1.5e-3, "bfloat16": 8e-3}


def conv3d_reference(
    x, w, stride=(1, 1, 1), pad_lo=(0, 0, 0), pad_hi=(0, 0, 0), dilation=(1, 1, 1), groups=1
):
    """(N, D, H, W, C_in) * (C_out, KD, KH, KW, C_in/groups) -> (N, Do, Ho, Wo, C_out), in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, _, _, _, c_in = x.shape
    c_out, kd, kh, kw, c_in_g = w.shape
    assert c_in == c_in_g * groups and c_out % groups == 0
    xp = np.pad(x, [(0, 0)] + [(lo, hi) for lo, hi in zip(pad_lo, pad_hi)] + [(0, 0)])
    kernel = (kd, kh, kw)
    out_sizes = [(xp.shape[1 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(3)]
    xg = xp.reshape(xp.shape[:4] + (groups, c_in_g))
    wg = w.reshape(groups, c_out // groups, kd, kh, kw, c_in_g)
    out = np.zeros((n, *out_sizes, groups, c_out // groups))
    for a in range(kd):
        for b in range(kh):
            for c in range(kw):
                starts = (a * dilation[0], b * dilation[1], c * dilation[2])
                window = xg[
                    :,
                    starts[0] : starts[0] + stride[0] * (out_sizes[0] - 1) + 1 : stride[0],
                    starts[1] : starts[1] + stride[1] * (out_sizes[1] - 1) + 1 : stride[1],
                    starts[2] : starts[2] + stride[2] * (out_sizes[2] - 1) + 1 : stride[2],
                ]
                out += np.einsum("ndhwgc,goc->ndhwgo", window, wg[:, :, a, b, c, :])
    return out.reshape(n, *out_sizes, c_out)


def assert_within(y, ref, bound, dtype_name: str, what: str = "") -> None:
    """|y - ref| <= bound, per element (NaN anywhere fails), with a message
    naming the first element off: the one comparison every reference check uses."""
    y64 = np.asarray(y, dtype=np.float64)
    prefix = f"{what}: " if what else ""
    assert y64.shape == ref.shape, f"{prefix}shape {y64.shape} != reference {ref.shape}"
    bad = ~(np.abs(y64 - ref) <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{prefix}{int(bad.sum())} of {y64.size} elements off ({dtype_name}); first at {i}: "
            f"got {y64[i]!r}, reference {ref[i]!r}, allowed error {bound[i]:.3g}"
        )


def assert_conv_close(y, x, w, dtype_name, **params):
    """Checks a result against the reference computed from the same (already
    rounded) inputs, with an error bound scaled per output element."""
    x64 = np.asarray(x, dtype=np.float64)
    w64 = np.asarray(w, dtype=np.float64)
    ref = conv3d_reference(x64, w64, **params)
    scale = conv3d_reference(np.abs(x64), np.abs(w64), **params)
    assert_within(y, ref, TOLERANCE[dtype_name] * scale + 1e-30, dtype_name)


def assert_conv_agree(y, other, x, w, dtype_name, **params):
    """Checks a result against another framework's: each may be off the exact
    value by the dtype's bound, so they may differ by twice it, per element."""
    x64 = np.asarray(x, dtype=np.float64)
    w64 = np.asarray(w, dtype=np.float64)
    scale = conv3d_reference(np.abs(x64), np.abs(w64), **params)
    y64, o64 = np.asarray(y, dtype=np.float64), np.asarray(other, dtype=np.float64)
    assert y64.shape == o64.shape == scale.shape, f"shapes {y64.shape}, {o64.shape}, expected {scale.shape}"
    bound = 2 * TOLERANCE[dtype_name] * scale + 1e-30
    bad = ~(np.abs(y64 - o64) <= bound)
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(
            f"{int(bad.sum())} of {y64.size} elements disagree ({dtype_name}); first at {i}: "
            f"got {y64[i]!r}, other {o64[i]!r}, allowed difference {bound[i]:.3g}"
        )
