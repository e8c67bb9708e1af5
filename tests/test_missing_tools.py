"""The README's test command on a machine without clang: the emulator tests
skip and say why, and VOLCONV_REQUIRE_EMULATOR=1 (as CI sets it) turns the
skip into a failure. Runs pytest on every emulator test file
(tests/test_metal_emulated*.py) in a child process whose PATH holds no
compiler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def run_without_tools(tmp_path: Path, require: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VOLCONV_EMU_CXX", "VOLCONV_EMU_LIB")}
    env["PATH"] = str(tmp_path)  # an empty folder: no clang, no cmake
    env.pop("VOLCONV_REQUIRE_EMULATOR", None)
    if require:
        env["VOLCONV_REQUIRE_EMULATOR"] = "1"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            *sorted(str(p) for p in TESTS.glob("test_metal_emulated*.py")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_emulator_tests_skip_with_a_reason_without_clang(tmp_path):
    proc = run_without_tools(tmp_path, require=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 5), out  # 5: pytest's "no tests ran", all skipped
    assert "error" not in out.lower(), out
    assert "skipped" in out and "the MSL emulator needs clang" in out, out


def test_ci_variable_turns_the_skip_into_a_failure(tmp_path):
    proc = run_without_tools(tmp_path, require=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode not in (0, 5) and "error" in out, out
    assert "VOLCONV_REQUIRE_EMULATOR=1 but the MSL emulator needs clang" in out, out


@pytest.mark.parametrize("require", ["", "0"])
def test_only_the_value_1_requires(monkeypatch, require):
    from conftest import skip_or_fail

    monkeypatch.setenv("VOLCONV_REQUIRE_EMULATOR", require)
    with pytest.raises(pytest.skip.Exception, match="no tool"):
        skip_or_fail("no tool")
