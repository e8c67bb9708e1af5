"""The x86 kernel sets come from one list (VOLCONV_X86_ISAS in
csrc/cpu/CMakeLists.txt): each unit is compiled for exactly the features the
CPU must have before it is picked. Checked against two references of our
own making neither: the compiler's predefined macros for each unit, and the
kernel's view of the CPU (/proc/cpuinfo)."""

from __future__ import annotations

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
    supported = [isa for isa in _core._cpu_supported_isas() if isa != "generic"]
    assert supported == expected
