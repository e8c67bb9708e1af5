"""The torch CUDA test modules' common start: torch, where both torch and
volconv see a CUDA GPU; otherwise the calling module is skipped, with the
reason (importorskip and pytest.skip both skip a module being imported)."""

from __future__ import annotations

import pytest

import volconv as vc


def torch_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or vc._core._gpu_backend() != "cuda":
        pytest.skip(
            f"no CUDA GPU for volconv here: {vc.unavailable_reason(vc.gpu) or 'torch sees no CUDA device'}",
            allow_module_level=True,
        )
    return torch
