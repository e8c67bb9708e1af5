"""`python -m volconv --version` and `--info`, run as a user would, in a fresh
process whose environment fixes what --info must report."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import volconv as vc


def run_cli(*args: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "volconv", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_version_is_the_installed_distributions():
    assert run_cli("--version").strip() == importlib.metadata.version("volconv")


def test_info_reports_the_forced_kernel_set_and_thread_count():
    lines = run_cli("--info", VOLCONV_CPU_ISA="generic", VOLCONV_NUM_THREADS="3").splitlines()
    assert lines[0].startswith(f"volconv {importlib.metadata.version('volconv')} ")
    assert any(line.startswith("CPU kernels: generic (this CPU supports: ") for line in lines), lines
    assert "CPU threads: 3" in lines


def test_info_says_whether_the_gpu_is_available_and_why_not():
    lines = run_cli("--info").splitlines()
    assert "cpu: available" in lines
    gpu = [line for line in lines if line.startswith("gpu: ")]
    if vc.is_available(vc.gpu):  # Metal on a Mac, CUDA on an NVIDIA machine
        assert gpu == ["gpu: available"]
    else:
        assert gpu == [f"gpu: not available: {vc.unavailable_reason(vc.gpu)}"]
        if sys.platform != "darwin":  # no Metal backend off macOS: the reason must say so
            assert "no Metal backend" in gpu[0]
