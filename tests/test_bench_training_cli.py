"""bench/conv3d_training_cpu.py's command line, and one tiny smoke run:
--shapes / --dir select exactly the runs; --quick runs every framework's
call for a direction on a small shape and prints the table and plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "conv3d_training_cpu.py"
if not BENCH.is_file():  # wheel tests copy tests/ without bench/
    pytest.skip("needs the source tree's bench/", allow_module_level=True)


def run(*args: str, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout
    )


def test_shapes_and_dirs_select_exactly_the_runs():
    proc = run("--shapes", "f,dw2", "--dir", "bwd_d,transpose", "--dtypes", "float32,bfloat16", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    runs = [tuple(line.split()) for line in proc.stdout.splitlines()]
    assert runs == [
        (s, d, t) for t in ("float32", "bfloat16") for d in ("bwd_d", "transpose") for s in ("f", "dw2")
    ]


def test_unknown_direction_is_refused_naming_the_valid_ones():
    proc = run("--dir", "bwd", "--dry-run")
    assert proc.returncode == 2 and "unknown bwd; valid: fwd,bwd_d,bwd_w,transpose" in proc.stderr


def test_quick_smoke_run(tmp_path):
    pytest.importorskip("torch")
    png = tmp_path / "training.png"
    proc = run(
        "--quick", "--shapes", "dw2", "--dir", "bwd_d,bwd_w", "--no-mlx", "--threads", "1", "--plot", str(png)
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("dw2:")]
    assert [(r[0], r[2]) for r in rows] == [
        ("dw2:bwd_d", "volconv"),
        ("dw2:bwd_d", "torch_cl"),
        ("dw2:bwd_w", "volconv"),
        ("dw2:bwd_w", "torch_cl"),
    ]
    assert all(float(r[3]) > 0 for r in rows)  # ms measured
    if "matplotlib not installed" not in proc.stdout:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
