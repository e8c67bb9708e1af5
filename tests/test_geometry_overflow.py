"""Geometry that passes validation must not overflow inside the kernels:
every product they form fits in int64, or the call is refused with a
ValueError up front. Zero-strided (broadcast) arrays make such sizes cheap."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import volconv as vc

from conftest import cpu_plan

# A 2^46-wide row of a broadcast input under a 2^16-deep kernel: the
# depthwise and one-input-channel row drivers once formed KD * row_bytes
# (2^64, wrapped to 0) and divided by it (SIGFPE).
WIDE_ROW = """
    import numpy as np
    import volconv as vc
    from numpy.lib.stride_tricks import as_strided

    c = {channels}
    x = as_strided(np.full(c, 1.5, np.float32), (1, 1, 1, 2**46 // c, c), (0, 0, 0, 0, 4))
    w = np.random.default_rng(0).uniform(-1, 1, (c, 2**16, 1, 1, 1)).astype(np.float32)
    pad = 2**15
    y = vc.conv3d(x, w, stride=(1, 1, 2**42), padding=((pad, 0, 0), (pad, 0, 0)), groups=c)
    # Only the tap kd = pad - od reads inside the one-plane input, so
    # y[0, od, 0, ow, co] = 1.5 * w[co, pad - od].
    expected = 1.5 * w[:, [pad, pad - 1], 0, 0, 0].astype(np.float64).T
    assert y.shape[1] == 2 and y.shape[3] == 2**46 // c // 2**42, y.shape
    assert np.allclose(y[0, :, 0, :, :], expected[:, None, :], rtol=1e-6), (y, expected)
"""


@pytest.mark.parametrize("channels,path", [(1, "few-cin"), (2, "dwconv")])
def test_wide_broadcast_row_under_a_deep_kernel(channels, path):
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WIDE_ROW.format(channels=channels))],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    assert out.returncode == 0, f"exit code {out.returncode}: {out.stderr[-2000:]}"
    c = channels
    x = as_strided(np.full(c, 1.5, np.float32), (1, 1, 1, 2**46 // c, c), (0, 0, 0, 0, 4))
    w = np.zeros((c, 2**16, 1, 1, 1), np.float32)
    pad = 2**15
    plan = cpu_plan(x, w, stride=(1, 1, 2**42), padding=((pad, 0, 0), (pad, 0, 0)), groups=c)
    assert plan["path"] == path, plan


def broadcast(shape, dtype=np.float32):
    return as_strided(np.ones(1, dtype), shape, (0,) * 5)


@pytest.mark.parametrize("dilation", [2**62, 2**60, (1, 2**56, 1)])
def test_same_padding_that_overflows_is_refused(dilation):
    x = np.ones((1, 4, 4, 4, 1), np.float32)
    w = np.ones((1, 3, 3, 3, 1), np.float32)
    with pytest.raises(
        ValueError, match=r"^\[conv3d\] padding='same' needs padding dilation\*\(kernel-1\) below 2\^56"
    ):
        vc.conv3d(x, w, padding="same", dilation=dilation)


def test_reduction_above_2_48_is_refused():
    w = broadcast((1, 2**17, 2**17, 2**15, 1))
    x = np.ones((1, 1, 1, 1, 1), np.float32)
    with pytest.raises(
        ValueError, match=r"^\[conv3d\] The kernel is too large: KD\*KH\*KW\*C_in/groups = 562949953421312"
    ):
        vc.conv3d(x, w, padding=((2**16, 2**16, 2**14), (2**16, 2**16, 2**14)))


def test_packed_weight_above_2_56_is_refused():
    """2^51 groups of one channel: the weight has 2^51 elements, but packed
    with each group's channels rounded up to a 64-wide tile, 2^57."""
    g = 2**51
    x = broadcast((1, 1, 1, 1, g))
    w = broadcast((g, 1, 1, 1, 1))
    with pytest.raises(ValueError, match=r"^\[conv3d\] The packed weight .* exceeds 2\^56"):
        vc.conv3d(x, w, groups=g)
