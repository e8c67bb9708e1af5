"""Static facts about the Metal kernels that speed on Apple GPUs depends on,
checked without a GPU: the 32-bit index instantiations contain no 64-bit
division (Apple GPUs have no integer divider; 64-bit division is a long
software sequence), every kernel declares its threadgroup size, and the
fixed-trip fragment loops are unrolled. The kernels are compiled to LLVM IR
with clang through the emulator's shim, one library unit (kernel family x
element type, exactly what the Metal host compiles on first use) at a time."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "metal"
SHIM = ROOT / "tests" / "emulator" / "shim"

pytestmark = pytest.mark.metal_emulated

# (file, family, number in conv3d_params.h's VOLCONV_FAMILY_*, root function)
UNITS = [
    ("conv3d_gemm.metal", "gemm", 1, "conv3d_gemm"),
    ("conv3d_gemm.metal", "pointwise", 2, "conv3d_gemm"),
    ("conv3d_small_cin.metal", "small_cin", 3, "conv3d_small_cin"),
    ("conv3d_depthwise.metal", "depthwise", 4, "conv3d_depthwise"),
    # The training kernels (conv_training_params.h's families 6-11).
    ("conv_training_phase.metal", "phase_gemm", 6, "convtrain_phase_gemm"),
    ("conv_training_phase.metal", "phase_depthwise", 7, "convtrain_phase_depthwise"),
    ("conv_training_wgrad.metal", "wgrad_gemm", 8, "convtrain_wgrad_gemm"),
    ("conv_training_wgrad.metal", "wgrad_depthwise", 9, "convtrain_wgrad_depthwise"),
    ("conv_training_wgrad.metal", "wgrad_reduce", 10, "convtrain_wgrad_reduce"),
    ("conv_training_fold.metal", "padding_fold", 11, "convtrain_padding_fold"),
]
DTYPES = {"float": 1, "half": 2, "bfloat": 3}
DIVISION_64 = re.compile(r"= (?:sdiv|udiv|srem|urem)(?: exact)? i64 ")
# The shim's stand-ins for Metal built-ins, the emulator runtime and the C++
# library are not the kernels' own code.
NOT_KERNEL_CODE = ("metal::", "emu::", "std::", "__gnu_cxx::")


def qualified_name(demangled: str) -> str:
    """ "volconv::OutPos volconv::decode_row<int>(...)" -> "volconv::decode_row"."""
    prev = None
    while prev != demangled:
        prev, demangled = demangled, re.sub(r"<[^<>]*>", "", demangled)
    tokens = demangled.split("(", 1)[0].split()
    return next((t for t in reversed(tokens) if "::" in t), tokens[-1] if tokens else "")


def _kernel_std() -> str:
    """The C++ standard the emulator compiles the kernels with."""
    cmake = (ROOT / "tests" / "emulator" / "CMakeLists.txt").read_text()
    m = re.search(r"-std=c\+\+(\d+)", cmake) or re.search(r"set\(CMAKE_CXX_STANDARD (\d+)\)", cmake)
    return m.group(1) if m else "17"


def _tools() -> tuple[str, str]:
    clang = shutil.which("clang++-19") or pytest.skip("needs clang++-19")
    cxxfilt = (
        shutil.which("llvm-cxxfilt-19") or shutil.which("llvm-cxxfilt") or pytest.skip("needs llvm-cxxfilt")
    )
    return clang, cxxfilt


def _functions(ir: str) -> dict[str, str]:
    """{mangled name: body} of every function defined in the module."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^define [^@\n]*@([\w.$]+)\([^\n]*\{\n(.*?)^\}", ir, re.M | re.S)
    }


def compile_unit(text: str, family_id: int, dtype_id: int) -> dict[str, tuple[str, str]]:
    """{demangled name: (mangled, body)} of the LLVM IR of kernel source
    `text`, built as one library unit, at -O0 (every division the source
    writes is still there)."""
    clang, cxxfilt = _tools()
    r = subprocess.run(
        [clang, f"-std=c++{_kernel_std()}", "-x", "c++", "-S", "-emit-llvm", "-O0", "-o", "-",
         "-Wno-unknown-attributes", f"-I{SHIM}", f"-I{KERNELS}",
         f"-DVOLCONV_LIBRARY_FAMILY={family_id}", f"-DVOLCONV_LIBRARY_DTYPE={dtype_id}", "-"],
        input=text, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    functions = _functions(r.stdout)
    names = list(functions)
    # llvm-cxxfilt 19 cannot read __bf16 (DF16b); "Dh" is another builtin
    # type (not a substitution candidate either), so the rest reads the same.
    demangled = subprocess.run(
        [cxxfilt],
        input="\n".join(n.replace("DF16b", "Dh") for n in names),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {d: (m, functions[m]) for m, d in zip(names, demangled)}


def divisions_reachable(unit: dict[str, tuple[str, str]], root: str) -> list[str]:
    """The 64-bit divisions in `root` and in every function of the kernels'
    own code it calls, directly or not: ["function: instruction", ...]."""
    by_mangled = {m: (d, body) for d, (m, body) in unit.items()}
    seen, queue, found = set(), deque([unit[root][0]]), []
    while queue:
        mangled = queue.popleft()
        if mangled in seen or mangled not in by_mangled:
            continue
        seen.add(mangled)
        name, body = by_mangled[mangled]
        if mangled != unit[root][0] and qualified_name(name).startswith(NOT_KERNEL_CODE):
            continue
        found += [f"{name}: {line.strip()}" for line in body.splitlines() if DIVISION_64.search(line)]
        queue.extend(re.findall(r"@([\w.$]+)\(", body))
    return found


def kernel_roots(unit: dict, function: str) -> dict[str, list[str]]:
    """The unit's instantiations of `function`, by index type ("int": 32-bit,
    "long": the 64-bit "_large" ones)."""
    roots = {"int": [], "long": []}
    for name in unit:
        m = re.match(rf"void {function}<(.*)>\(", name)
        if m:
            roots[m.group(1).rsplit(",", 1)[1].strip()].append(name)
    return roots


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("source,family,family_id,function", UNITS, ids=[u[1] for u in UNITS])
def test_32bit_kernels_have_no_64bit_division(source, family, family_id, function, dtype):
    unit = compile_unit((KERNELS / source).read_text(), family_id, DTYPES[dtype])
    roots = kernel_roots(unit, function)
    # 2 vector widths per tile of the family; depthwise has no tile list.
    per_width = {
        "gemm": 10,
        "pointwise": 10,
        "small_cin": 6,
        "depthwise": 2,
        "phase_gemm": 2,
        "wgrad_gemm": 2,
    }.get(family, 1)
    assert len(roots["int"]) == len(roots["long"]) == per_width, roots
    for root in roots["int"]:
        assert divisions_reachable(unit, root) == [], root
    # The check sees divisions where they are: the 64-bit kernels divide in 64
    # bits (the reduction of the weight gradient divides nothing).
    for root in roots["long"] if family != "wgrad_reduce" else []:
        assert divisions_reachable(unit, root), root


def test_division_check_finds_a_64bit_division_in_a_helper():
    """Calibration, on every run: one 64-bit division added to a helper the
    gemm kernel calls (InputGather::advance) is found in its 32-bit kernels."""
    source = (KERNELS / "conv3d_gemm.metal").read_text()
    mutated = source.replace("    k += BK;\n", "    k += int(int64_t(k) / p.gemm_m) + BK;\n", 1)
    assert mutated != source, "InputGather::advance changed: update this mutation"
    unit = compile_unit(mutated, 1, 1)
    for root in kernel_roots(unit, "conv3d_gemm")["int"]:
        assert any("advance" in f for f in divisions_reachable(unit, root)), root


def _kernel_declarations() -> list[tuple[str, str, str]]:
    """(file, attribute list, function) of every [[kernel ...]] in metal/."""
    found = []
    for f in sorted(KERNELS.glob("*.metal")):
        text = re.sub(r"//[^\n]*", "", f.read_text())
        found += [
            (f.name, m.group(1), m.group(2))
            for m in re.finditer(r"\[\[(kernel\b[^\]]*)\]\]\s*void\s+(\w+)", text)
        ]
    return found


def test_every_kernel_declares_its_threadgroup_size():
    """[[max_total_threads_per_threadgroup(N)]] with the planner's threadgroup
    size (WM * WN simdgroups of 32, the depthwise tile's THREADS, one
    simdgroup for the self-check): the compiler may then budget registers
    for exactly that many threads."""
    expected = {
        "conv3d_gemm": "WM * WN * 32",
        "conv3d_small_cin": "WM * WN * 32",
        "conv3d_depthwise": "DepthwiseTile::THREADS",
        "volconv_self_check": "32",
        "convtrain_phase_gemm": "WM * WN * 32",
        "convtrain_phase_depthwise": "TrainingTile::THREADS",
        "convtrain_wgrad_gemm": "WM * WN * 32",
        "convtrain_wgrad_depthwise": "TrainingTile::THREADS",
        "convtrain_wgrad_reduce": "TrainingTile::REDUCE_THREADS",
        "convtrain_padding_fold": "TrainingTile::FOLD_THREADS",
    }
    kernels = _kernel_declarations()
    assert {k for _, _, k in kernels} == set(expected)
    for file, attributes, function in kernels:
        m = re.search(r"max_total_threads_per_threadgroup\(([^)]*)\)", attributes)
        assert m and m.group(1).strip() == expected[function], f"{file}: {function} [[{attributes}]]"


# Loops whose trip count is a template parameter or a literal: unrolled, so
# arrays indexed by their counters (acc[TM][TN], base[ROWS], v[VEC]) stay in
# registers instead of spilling to stack memory.
FIXED_TRIP = re.compile(r"for \(int (\w+) = 0; \1 < (TM|TN|ROWS|VEC|PPT|BK|2); (?:\+\+\1|\1 \+= 8)\)")


def test_fixed_trip_loops_are_unrolled():
    loops = 0
    for f in [*KERNELS.glob("*.metal"), KERNELS / "conv3d_common.h"]:
        if f.name == "conv3d_self_check.metal":
            continue  # runs once per device: speed does not matter
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            if FIXED_TRIP.search(line):
                loops += 1
                assert lines[i - 1].strip() == "VOLCONV_UNROLL", f"{f.name}:{i + 1}: {line.strip()}"
    assert loops >= 20, "the loop pattern no longer matches the kernels: update FIXED_TRIP"
