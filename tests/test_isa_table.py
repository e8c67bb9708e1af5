"""The x86 kernel sets come from one list (VOLCONV_X86_ISAS in
csrc/cpu/CMakeLists.txt): each unit is compiled for exactly the features the
CPU must have before it is picked. Checked against two references of our
own making neither: the compiler's predefined macros for each unit, and the
kernel's view of the CPU (/proc/cpuinfo)."""

from __future__ import annotations

import os
import platform

import pytest

from volconv import _core

X86 = platform.machine().lower() in ("x86_64", "amd64")
pytestmark = pytest.mark.skipif(not X86, reason="the list holds x86 kernel sets")

# /proc/cpuinfo spells a few flags differently from GCC's feature names.
CPUINFO_NAME = {"avx512bf16": "avx512_bf16"}


def table():
    return {name: (required.split(), compiled.split()) for name, required, compiled in _core._cpu_isa_table()}


def test_every_x86_set_is_listed():
    assert list(table()) == ["avx512bf16", "avx512f", "avx2"]


@pytest.mark.parametrize("name", ["avx512bf16", "avx512f", "avx2"])
def test_each_unit_is_compiled_for_exactly_what_the_cpu_must_have(name):
    required, compiled = table()[name]
    assert sorted(compiled) == sorted(required), (
        f"the {name} unit is compiled for {sorted(compiled)} but the run-time check tests {sorted(required)}"
    )


def cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    pytest.skip("no /proc/cpuinfo")


def test_the_sets_picked_are_those_whose_features_the_cpu_has():
    flags = cpuinfo_flags()
    expected = [
        name
        for name, (required, _) in table().items()
        if all(CPUINFO_NAME.get(f, f) in flags for f in required)
    ]
    # "-2fma" names are tile sets of a unit (below), not units of the list.
    supported = [isa for isa in _core._cpu_supported_isas() if isa != "generic" and "-" not in isa]
    assert supported == expected


# The AVX-512 units' second tile set, for cores with two 512-bit FMA pipes
# (kernels-avx512f.cpp): offered exactly where its unit is, and picked by
# default exactly when this machine's measured FMA rates ask for it. The
# rates' rule itself is tested with given rates in tests/cpp/test_cpu_tile_pick.cpp.
TWO_FMA = {"avx512bf16-2fma": "avx512bf16", "avx512f-2fma": "avx512f"}


def test_two_fma_sets_are_offered_with_their_unit():
    supported = _core._cpu_supported_isas()
    for variant, unit in TWO_FMA.items():
        assert (variant in supported) == (unit in supported), supported


def test_the_default_tile_set_follows_the_fma_rates():
    if os.environ.get("VOLCONV_CPU_ISA"):
        pytest.skip("VOLCONV_CPU_ISA picks the set")
    wide, narrow, two_fma = _core._cpu_fma_rates()
    supported = _core._cpu_supported_isas()
    _core._cpu_force_isa("")
    active = _core._cpu_isa()
    assert active == supported[0]  # best first
    if "avx512f" not in supported:
        assert (wide, narrow, two_fma) == (0.0, 0.0, False)
        assert not active.endswith("-2fma")
        return
    assert wide > 0 and narrow > 0
    assert two_fma == (wide >= 1.5 * narrow), (wide, narrow)
    best_unit = next(isa for isa in supported if "-" not in isa)
    assert active == (best_unit + "-2fma" if two_fma else best_unit), (active, wide, narrow)
