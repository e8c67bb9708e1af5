"""Inputs whose channels are outermost in memory (a PyTorch NCDHW tensor
permuted to NDHWC, or numpy's transpose of an NCDHW array) run every CPU path
and give exactly the result of a contiguous copy, which is checked against
the float64 reference (the CPU copies them once by a blocked transpose)."""

import numpy as np
import pytest

import volconv

from conftest import FLOAT_DTYPES, cast
from reference import assert_conv_close

# (input NDHWC shape, weight shape, groups, padding, stride): one per CPU path
# (depthwise, few-cin, fold-w, small-cin, igemm, packed-a through grouping), plus
# sizes that leave partial transpose blocks (C and D*H*W not multiples of 16).
SHAPES = [
    ((1, 4, 5, 6, 4), (4, 3, 3, 3, 1), 4, 1, 1),
    ((1, 4, 5, 6, 1), (8, 3, 3, 3, 1), 1, 1, 1),
    ((1, 4, 5, 9, 5), (8, 3, 3, 5, 5), 1, 2, 1),
    ((1, 4, 5, 6, 4), (8, 3, 3, 3, 2), 2, 1, 1),
    ((2, 4, 5, 6, 8), (16, 3, 3, 3, 8), 1, 1, 1),
    ((2, 3, 7, 5, 19), (7, 3, 1, 3, 19), 1, 1, 2),
]
IDS = ["depthwise", "few-cin", "fold-w", "small-cin", "igemm", "odd-sizes"]


def channels_outermost(a: np.ndarray, order=(0, 4, 1, 2, 3)) -> np.ndarray:
    """`a` (NDHWC) as a view of a copy stored in `order` (default NCDHW)."""
    stored = np.ascontiguousarray(a.transpose(order))
    view = stored.transpose(np.argsort(order))
    assert view.shape == a.shape and (a.shape[4] == 1 or view.strides[4] != a.itemsize)
    return view


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_ncdhw_view_matches_contiguous(shape, dtype):
    x_shape, w_shape, groups, padding, stride = shape
    rng = np.random.default_rng(7)
    x = cast(rng.uniform(-1, 1, x_shape), dtype)
    w = cast(rng.uniform(-1, 1, w_shape), dtype)
    kw = dict(padding=padding, groups=groups, stride=stride)
    contiguous = np.asarray(volconv.conv3d(x, w, **kw))
    y = np.asarray(volconv.conv3d(channels_outermost(x), w, **kw))
    np.testing.assert_array_equal(y, contiguous)
    p = (padding,) * 3
    assert_conv_close(y, x, w, dtype, pad_lo=p, pad_hi=p, groups=groups, stride=(stride,) * 3)


# Other storage orders: spatial dims that do not merge into one run (W
# outermost, H between C and D) and a batch that is not outermost.
@pytest.mark.parametrize(
    "order", [(0, 3, 4, 1, 2), (2, 0, 4, 1, 3), (4, 0, 3, 1, 2)], ids=["W-C-DH", "D-N-C-HW", "C-N-H-DW"]
)
def test_other_orders_match_contiguous(order):
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (2, 4, 5, 21, 18)).astype(np.float32)
    w = rng.uniform(-1, 1, (9, 3, 3, 3, 18)).astype(np.float32)
    contiguous = np.asarray(volconv.conv3d(x, w, padding=1))
    y = np.asarray(volconv.conv3d(channels_outermost(x, order), w, padding=1))
    np.testing.assert_array_equal(y, contiguous)
    assert_conv_close(y, x, w, "float32", pad_lo=(1,) * 3, pad_hi=(1,) * 3)


def test_torch_ncdhw_permuted_view():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(3)
    x_ncdhw = torch.rand(2, 24, 6, 7, 9, generator=g) * 2 - 1
    w = torch.rand(5, 3, 3, 3, 24, generator=g) * 2 - 1
    view = x_ncdhw.permute(0, 2, 3, 4, 1)  # NDHWC, channels outermost in memory
    assert not view.is_contiguous()
    y = volconv.conv3d(view, w, padding=1)
    torch.testing.assert_close(y, volconv.conv3d(view.contiguous(), w, padding=1), rtol=0, atol=0)
    assert torch.equal(x_ncdhw.permute(0, 2, 3, 4, 1), view)  # the caller's tensor is unchanged
    assert_conv_close(y.numpy(), view.numpy(), w.numpy(), "float32", pad_lo=(1,) * 3, pad_hi=(1,) * 3)


def test_strided_channels_are_copied_once_per_call():
    """The blocked copy runs for a view with strided channels (results alone
    cannot show it: the gathering paths give the same sums, slowly) and not
    for a contiguous input."""
    from volconv import _core

    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (1, 4, 5, 6, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 3, 3, 8)).astype(np.float32)
    before = _core._cpu_relayout_count()
    volconv.conv3d(x, w, stream=volconv.cpu)
    assert _core._cpu_relayout_count() == before
    volconv.conv3d(channels_outermost(x), w, stream=volconv.cpu)
    assert _core._cpu_relayout_count() == before + 1
