"""The PyTorch examples run and say what they claim: the 3D U-Net's loss
decreases over 30 steps and its first-step gradients equal those of the same
model built from torch.nn layers; DDP over two processes gives the
gradients of one process on the whole batch (examples/ddp_torch.py checks
that itself and exits non-zero otherwise)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import unet3d_torch  # noqa: E402


def test_unet_first_step_gradients_equal_torch_nn():
    torch.manual_seed(0)
    ours = unet3d_torch.UNet3d(use_volconv=True)
    ref = unet3d_torch.UNet3d(use_volconv=False)
    ref.load_state_dict(ours.state_dict())
    x, target = unet3d_torch.synthetic_batch(2, 16, seed=0)
    for m in (ours, ref):
        F.mse_loss(m(x), target).backward()
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        scale = q.grad.abs().max()
        # float32: both accumulate ~10^4 products per gradient element in a different order.
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=2e-5 * float(scale), msg=name)


def test_unet_loss_decreases_over_30_steps():
    torch.manual_seed(0)
    model = unet3d_torch.UNet3d().to(memory_format=torch.channels_last_3d)
    losses = unet3d_torch.train(model, 30)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, losses


def test_ddp_two_processes_equal_one_process():
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "ddp_torch.py")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gradients equal one process on the whole batch" in proc.stdout
