from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

# tests/ holds shared helpers (reference.py, cases.py) imported by name.
sys.path.insert(0, str(Path(__file__).resolve().parent))

FLOAT_DTYPES = ["float32", "float16", "bfloat16", "float64"]


# "-2fma": the AVX-512 sets' tiles for two 512-bit FMA pipes (kernels-avx512f.cpp).
ALL_ISAS = ["avx512bf16", "avx512bf16-2fma", "avx512f", "avx512f-2fma", "avx2", "neon", "generic"]


@pytest.fixture(autouse=True)
def _plans_as_on_two_cpus():
    """Plans take the machine to have 2 CPUs, so a test's path does not
    depend on the machine's size (Winograd's many-CPU rule); the tests of
    that rule override it themselves."""
    from volconv import _core

    _core._cpu_override_cpus(2)
    yield
    _core._cpu_override_cpus(0)


@pytest.fixture(params=ALL_ISAS)
def every_isa(request):
    """Each CPU kernel set in turn, forced (skipped where this CPU lacks it)."""
    from volconv import _core

    if request.param not in _core._cpu_supported_isas():
        pytest.skip(f"this CPU cannot run the {request.param} kernels")
    _core._cpu_force_isa(request.param)
    yield request.param
    _core._cpu_force_isa("")


@pytest.fixture
def threads():
    """Restores the default thread count after a test that changes it."""
    import volconv

    yield
    volconv.set_num_threads(0)


@pytest.fixture
def no_winograd():
    """CPU plans skip the winograd path for the test: for tests written for
    the igemm's blocking or chunking on 3x3x3 shapes winograd would take."""
    import volconv

    volconv.set_cpu_winograd(False)
    yield
    volconv.set_cpu_winograd(True)


def numpy_dtype(name: str):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return ml_dtypes.bfloat16
    return np.dtype(name)


def cast(a: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(a).astype(numpy_dtype(name))


# Tests that need a tool this machine may lack skip with the reason, as a new
# user running the README's command expects; CI sets the variable to 1 so that
# a missing tool fails the run instead of hiding the tests.
REQUIRE_EMULATOR = "VOLCONV_REQUIRE_EMULATOR"


def skip_or_fail(missing: str | None, require_env: str = REQUIRE_EMULATOR) -> None:
    """Skips the calling test (or, at import, its module) because `missing`
    (the reason) is set; fails instead when `require_env` is "1"."""
    if not missing:
        return
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {missing}", pytrace=False)
    pytest.skip(missing, allow_module_level=True)


def emulator_missing() -> str | None:
    """Why the MSL emulator (tests/emulator) cannot be built here, or None."""
    if os.environ.get("VOLCONV_EMU_LIB"):
        return None  # a prebuilt library (e.g. a sanitizer build) needs no tools
    sys.path.insert(0, str(Path(__file__).resolve().parent / "emulator"))
    import msl_emulator

    if msl_emulator.find_compiler() is None:
        return (
            "the MSL emulator needs clang (clang++-19 or clang++, or VOLCONV_EMU_CXX): "
            "apt-get install clang-19, or see README (Linux prerequisites)"
        )
    if shutil.which("cmake") is None:
        return "the MSL emulator needs cmake (pip install cmake)"
    return None


def require_emulator() -> None:
    """At the top of a test module that runs the MSL emulator."""
    skip_or_fail(emulator_missing(), REQUIRE_EMULATOR)


def cpu_plan(x, w, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros") -> dict:
    """What the CPU planner runs for volconv.conv3d(x, w, ...) (path, kernel,
    tile, chunks): the one way tests ask which path a call takes."""
    from volconv import _core
    from volconv._arrays import as_operand
    from volconv._params import conv_params

    xo, wo = as_operand(x, "conv3d", "input"), as_operand(w, "conv3d", "weight")
    params = conv_params(
        padding, stride, dilation, groups, tuple(wo.storage.shape[1:4]), padding_mode=padding_mode
    )
    return _core._cpu_plan(xo.storage, xo.dtype, wo.storage, wo.dtype, params)


def path_for_16bit_input(path: str, cin_per_group: int, dtype: str, isa: str) -> str:
    """The CPU path a float16 / bfloat16 input reaches where float32 reaches
    `path`: the row paths (depthwise, few C_in, small C_out) convert 16-bit
    rows to float32 and keep it; the GEMM paths gather rows (small-cin up to
    4 channels per group, else packed-a) or, bf16 x bf16 with an even C_in
    on avx512bf16, run vdpbf16ps."""
    if path in ("dwconv", "few-cin", "small-cout"):
        return path
    if cin_per_group <= 4:
        return "small-cin"
    bf16_pairs = dtype == "bfloat16" and isa == "avx512bf16" and cin_per_group % 2 == 0
    return "igemm" if bf16_pairs else "packed-a"


def cpu_problem_plan(
    op, a, b, shape=None, *, stride=1, padding=0, dilation=1, groups=1, output_padding=0
) -> dict:
    """What the CPU planner runs for volconv.<op>(a, b[, shape], ...) with op
    conv3d_grad_input, conv3d_grad_weight or conv_transpose3d (path, kernel)."""
    from volconv import _core, _training
    from volconv._arrays import as_operand
    from volconv._params import conv_params

    ao, bo = as_operand(a, op, "a"), as_operand(b, op, "b")
    if op == "conv_transpose3d":
        p = _training._transpose_params(op, stride, padding, dilation, output_padding, groups)
        return _core._cpu_plan_problem(op, ao.storage, ao.dtype, bo.storage, bo.dtype, p)
    kernel = (bo.storage.shape if op == "conv3d_grad_input" else shape)[1:4]
    params = conv_params(padding, stride, dilation, groups, tuple(kernel), op)
    return _core._cpu_plan_problem(op, ao.storage, ao.dtype, bo.storage, bo.dtype, tuple(shape), params)
