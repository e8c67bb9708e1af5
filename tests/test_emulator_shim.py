"""The MSL emulator's shim is as strict as the rules it models: each rule has
a deliberately broken kernel in tests/emulator/mutants that must fail (not
compile, produce NaN, raise an emulator error, or draw a sanitizer report),
and most have a twin without the bug that must pass, so none of these
checks passes by failing everything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))

import msl_emulator

EMULATOR = Path(__file__).resolve().parent / "emulator"

pytestmark = pytest.mark.metal_emulated

MUTANTS = EMULATOR / "mutants"
COMPILE_MUTANTS = sorted((MUTANTS / "compile").glob("*.metal"))


@pytest.fixture(scope="module")
def mutants() -> msl_emulator.Emulator:
    return msl_emulator.load_or_skip("msl_emulator_mutants")


def matrices(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (8, 8)).astype(np.float32), rng.uniform(-1, 1, (8, 8)).astype(np.float32)


# ---------------------------------------------------------------- compile-time rules


def compile_kernel(source: Path, kernel_pass: str) -> subprocess.CompletedProcess:
    """clang with exactly the flags the emulator build compiles kernels with
    in that pass (written by tests/emulator/CMakeLists.txt)."""
    rsp = msl_emulator.build_dir() / f"kernel_flags_{kernel_pass}.rsp"
    cmd = [msl_emulator._compiler(), f"@{rsp}", "-fsyntax-only", str(source)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("source", COMPILE_MUTANTS, ids=[p.stem for p in COMPILE_MUTANTS])
def test_compile_mutant_is_rejected(mutants, source):
    """Each file's first line says which pass must reject it and with what
    diagnostic; `// compiles in: <pass>` names a pass that does not model
    the rule and so accepts it (the shim before this rule did too)."""
    text = source.read_text()
    expect = re.search(r"^// expect (run|address_spaces): (.+)$", text, re.M)
    assert expect, f"{source.name} has no '// expect <pass>: <regex>' line"
    result = compile_kernel(source, expect.group(1))
    assert result.returncode != 0, f"{source.name} compiled in the {expect.group(1)} pass"
    assert re.search(expect.group(2), result.stderr), result.stderr
    other = re.search(r"^// compiles in: (run|address_spaces)$", text, re.M)
    if other:
        result = compile_kernel(source, other.group(1))
        assert result.returncode == 0, result.stderr


def test_compile_mutants_cover_every_rule():
    expectations = " ".join(p.read_text().splitlines()[0] for p in COMPILE_MUTANTS)
    for rule in ("load_weight_tile", "threadgroup float", "decode_row", "'float' to", "'\\*'", "C\\+\\+17"):
        assert rule in expectations, rule


# ---------------------------------------------------------------- simdgroup_matrix


def test_unfilled_simdgroup_matrix_is_nan(mutants):
    a, b = matrices(1)
    assert np.isnan(mutants.run_kernel("mutant_unfilled_accumulator", a, b)).all()
    twin = mutants.run_kernel("twin_filled_accumulator", a, b).reshape(8, 8)
    np.testing.assert_allclose(twin, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- barriers


def test_thread_returning_before_a_barrier_is_an_error(mutants):
    x = np.arange(64, dtype=np.float32)
    start = time.monotonic()
    with pytest.raises(
        msl_emulator.EmulatorError,
        match=r'kernel "mutant_exit_before_barrier", threadgroup \(0, 0, 0\): thread 5 returned from the kernel '
        r"while thread \d+ waits at a threadgroup_barrier; every thread must reach each barrier",
    ):
        mutants.run_kernel("mutant_exit_before_barrier", x, x, threadgroup_memory=128)
    assert time.monotonic() - start < 20  # reported at once, not after the barrier timeout
    out = mutants.run_kernel("twin_exit_after_barrier", x, x, threadgroup_memory=128)
    expect = np.roll(x[:32], -1)
    expect[5] = 0  # thread 5 returns after the barrier, before its store
    np.testing.assert_array_equal(out[:32], expect)


def test_divergent_barriers_time_out(mutants):
    x = np.arange(64, dtype=np.float32)
    mutants.set_barrier_timeout_ms(300)
    try:
        start = time.monotonic()
        with pytest.raises(
            msl_emulator.EmulatorError, match=r"waited 300 ms at a (threadgroup|simdgroup)_barrier"
        ):
            mutants.run_kernel("mutant_divergent_barriers", x, x)
        assert time.monotonic() - start < 20
    finally:
        mutants.set_barrier_timeout_ms(int(os.environ.get("VOLCONV_EMU_BARRIER_TIMEOUT_MS", 120000)))
    # The emulator is usable afterwards.
    out = mutants.run_kernel("twin_exit_after_barrier", x, x, threadgroup_memory=128)
    assert out[0] == x[1]


# ---------------------------------------------------------------- host names


def test_duplicate_host_name_is_refused(mutants):
    with pytest.raises(msl_emulator.EmulatorError, match=r'duplicate host_name "shim_copy_float"'):
        msl_emulator.Emulator(msl_emulator.library_path("msl_emulator_duplicate_names"))


# ---------------------------------------------------------------- sanitizers

# (sanitizer, kernel, threadgroup memory, report expected or None). Run by
# tests/emulator/run_sanitizers.sh, which sets VOLCONV_EMU_SANITIZER and
# preloads that sanitizer; each kernel runs in a child process, since a
# report ends the process.
SANITIZER_MUTANTS = [
    ("thread", "mutant_barrier_mem_none", 128, r"WARNING: ThreadSanitizer: data race"),
    ("thread", "twin_barrier_mem_threadgroup", 128, None),
    ("undefined", "mutant_misaligned_vector_load", 0, r"runtime error: load of misaligned address"),
    ("undefined", "twin_aligned_vector_load", 0, None),
    ("undefined", "mutant_signed_overflow", 0, r"runtime error: signed integer overflow"),
    ("undefined", "twin_no_overflow", 0, None),
]

CHILD = """
import sys
import numpy as np
sys.path.insert(0, {emulator!r})
import msl_emulator
emu = msl_emulator.Emulator(msl_emulator.library_path("msl_emulator_mutants"))
x = np.full(64, 2.0, dtype=np.float32)
emu.run_kernel({kernel!r}, x, x, threadgroup_memory={smem})
"""


@pytest.mark.parametrize(
    "sanitizer,kernel,smem,report", SANITIZER_MUTANTS, ids=[m[1] for m in SANITIZER_MUTANTS]
)
def test_sanitizer_reports_mutant(sanitizer, kernel, smem, report):
    # "address,undefined": one build, both sanitizers.
    if sanitizer not in os.environ.get("VOLCONV_EMU_SANITIZER", "").split(","):
        pytest.skip(f"runs under tests/emulator/run_sanitizers.sh ({sanitizer} sanitizer)")
    code = CHILD.format(emulator=str(EMULATOR), kernel=kernel, smem=smem)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if report is None:
        assert result.returncode == 0 and "Sanitizer" not in result.stderr, result.stderr
    else:
        assert result.returncode != 0 and re.search(report, result.stderr), result.stderr
