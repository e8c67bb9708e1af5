"""volconv.torch.nn layers: torch.nn's signatures and state_dict (weights
load both ways unchanged), the same outputs as torch.nn's layers for every
padding mode, the activation keyword; and the plain API's warning for a
tensor that requires grad."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
vt = pytest.importorskip("volconv.torch")
import volconv  # noqa: E402
from volconv import _arrays  # noqa: E402
from volconv.torch.nn import Conv3d, ConvTranspose3d  # noqa: E402


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (1, 0, 2), "same"])
def test_conv3d_loads_torch_weights_and_matches(padding_mode, padding):
    torch.manual_seed(0)
    kw = dict(padding=padding, dilation=(1, 2, 1), groups=2, padding_mode=padding_mode, dtype=torch.float64)
    ref = torch.nn.Conv3d(4, 6, (3, 2, 3), **kw)
    ours = Conv3d(4, 6, (3, 2, 3), **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 5, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))
    ref.load_state_dict(ours.state_dict())  # and back


def test_conv3d_activation_keyword():
    torch.manual_seed(0)
    ref = torch.nn.Conv3d(3, 5, 3, padding=1, bias=False)
    ours = Conv3d(3, 5, 3, padding=1, bias=False, activation="silu")
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 4, 4, 4)
    torch.testing.assert_close(ours(x), F.silu(ref(x)), rtol=1e-5, atol=1e-5)
    assert "activation='silu'" in repr(ours)
    with pytest.raises(ValueError, match=r"\[volconv.torch.nn.Conv3d\] Expected activation"):
        Conv3d(3, 5, 3, activation="tanh")


@pytest.mark.parametrize("output_size", [None, (8, 11, 7)])
def test_conv_transpose3d_loads_torch_weights_and_matches(output_size):
    torch.manual_seed(0)
    kw = dict(stride=2, padding=(1, 0, 1), groups=2, dilation=(1, 2, 1), dtype=torch.float64)
    ref, ours = torch.nn.ConvTranspose3d(4, 6, 3, **kw), ConvTranspose3d(4, 6, 3, **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 4, 4, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ours(x, output_size), ref(x, output_size))


def test_conv_transpose3d_other_padding_modes_refused_as_torch():
    with pytest.raises(ValueError, match="padding mode"):
        ConvTranspose3d(4, 6, 3, padding_mode="reflect")


def test_plain_conv3d_warns_once_for_a_tensor_that_requires_grad(monkeypatch):
    monkeypatch.setattr(_arrays, "_warned_torch_requires_grad", False)
    x = torch.randn(1, 4, 4, 4, 2, requires_grad=True)
    w = torch.randn(3, 1, 1, 1, 2, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            volconv.conv3d(x, w)
        with torch.inference_mode():
            volconv.conv3d(x, w)
        volconv.conv3d(x.detach(), w.detach())
        assert caught == []  # no gradient could have been expected
        volconv.conv3d(x, w)
        volconv.conv_transpose3d(x, w)
    assert len(caught) == 1
    assert caught[0].category is UserWarning
    assert "volconv.torch" in str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    monkeypatch.setattr(_arrays, "_warned_torch_requires_grad", False)
    with pytest.warns(UserWarning, match="volconv.torch") as again:
        volconv.conv3d_grad_weight(x, x, (2, 1, 1, 1, 2))  # a deeper call path
    assert again[0].filename == __file__
