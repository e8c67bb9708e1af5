"""The CUDA backend's seams, checked without a GPU: each function
csrc/core/backend.h and conv_problem.h declare for CUDA is defined by the
CUDA host (csrc/cuda/*.cu) and by the stub (no_cuda.cpp). CI compiles the
host but never links it, so a missing definition would otherwise show only
as a link error on a machine with a CUDA toolkit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import volconv as vc

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> set[str]:
    names: set[str] = set()
    for header in ("backend.h", "conv_problem.h"):
        text = (ROOT / "csrc" / "core" / header).read_text()
        block = text[text.index("namespace volconv::cuda {") :]
        block = block[: block.index("}  // namespace volconv::cuda")]
        names |= set(re.findall(r"^[\w:<>*& ]+?\b(\w+)\(", block, flags=re.M))
    return names


def test_host_and_stub_define_every_cuda_backend_function():
    names = _declared()
    assert {
        "unavailable_reason",
        "new_queue",
        "wrap_queue",
        "queue_wait",
        "synchronize",
        "conv3d",
        "run_problem",
    } <= names
    host = "".join(p.read_text() for p in sorted((ROOT / "csrc" / "cuda").glob("*.cu")))
    stub = (ROOT / "csrc" / "cuda" / "no_cuda.cpp").read_text()
    for name in names:
        definition = re.compile(r"^[\w:<>*& ]*\b" + name + r"\([^;]*\)\s*\{", flags=re.M)
        assert definition.search(host), f"the CUDA host does not define {name}()"
        assert definition.search(stub), f"no_cuda.cpp does not define {name}()"


@pytest.mark.skipif(vc._core._gpu_backend() != "none", reason="a GPU backend runs here")
def test_without_a_gpu_the_reason_names_both_backends():
    """vc.gpu looked for Metal and for CUDA, and says why neither runs."""
    reason = vc.unavailable_reason(vc.gpu)
    assert reason.startswith("no GPU backend can run here: ")
    assert "no Metal backend" in reason
    assert "CUDA" in reason or "NVIDIA" in reason
    x, w = np.zeros((1, 3, 3, 3, 2), np.float32), np.zeros((2, 3, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match=r"Device gpu\(0\) is not available: no GPU backend can run here"):
        vc.conv3d(x, w, groups=2, stream=vc.gpu)


@pytest.mark.skipif(vc._core._gpu_backend() != "none", reason="a GPU backend runs here")
def test_a_dlpack_producer_in_cuda_memory_without_a_cuda_backend_is_refused_clearly():
    """Any DLPack producer whose array says it is in CUDA memory (JAX, say)
    takes the CUDA route: without a CUDA backend, the reason, before its
    data is exported."""

    class InCudaMemory:
        exported = False

        def __dlpack__(self, **kwargs):
            InCudaMemory.exported = True
            raise AssertionError("exported")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA, device 0

    w = np.zeros((2, 3, 3, 3, 1), np.float32)
    with pytest.raises(ValueError, match=r"Device gpu\(0\) is not available: no GPU backend can run here"):
        vc.conv3d(InCudaMemory(), w, groups=2)
    assert not InCudaMemory.exported
