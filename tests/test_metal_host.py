"""The Metal host (csrc/metal), checked on any platform without Metal: the
embedded MSL source, the portable buffer decisions, the host's bindings
against the kernel signatures in metal/, the plan fields the host encodes,
and the CI workflows. Needs the source tree, not the volconv package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "csrc" / "metal"
KERNELS = ROOT / "metal"
PLANNER = ROOT / "csrc" / "metal_plan"
SHIM = ROOT / "tests" / "emulator" / "shim"

pytestmark = pytest.mark.skipif(not (HOST / "embed_msl.cmake").is_file(), reason="needs the volconv source tree")


def _cxx() -> str:
    for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++", "clang++-19"):
        if name and shutil.which(name):
            return name
    pytest.skip("no C++ compiler")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout}\n{r.stderr}"
    return r


# ---------------------------------------------------------------- the embedded MSL source


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> tuple[Path, str]:
    """Runs the build's embedding step; returns the generated .cpp and the MSL text in it."""
    if not list(KERNELS.glob("*.metal")):
        pytest.skip("no kernels in metal/ yet")
    cmake = shutil.which("cmake") or pytest.skip("no cmake")
    out = tmp_path_factory.mktemp("embed") / "msl_source.cpp"
    _run([cmake, f"-DMSL_DIR={KERNELS}", f"-DOUTPUT={out}", "-P", HOST / "embed_msl.cmake"])
    text = out.read_text()
    m = re.search(r'R"volconv_msl\((.*)\)volconv_msl"', text, re.S)
    assert m, "the generated file holds no raw string"
    return out, m.group(1)


def _local_includes(text: str) -> list[str]:
    return re.findall(r'^\s*#\s*include\s*"([^"]+)"', text, re.M)


def test_embedded_source_is_self_contained(embedded):
    _, msl = embedded
    assert _local_includes(msl) == [], "local #includes left for newLibraryWithSource to resolve"
    assert not re.search(r"^\s*#\s*pragma\s+once", msl, re.M)
    for source in sorted(KERNELS.glob("*.metal")):
        assert f'#line 1 "{source.name}"' in msl, f"{source.name} is not embedded"
    # Every header a kernel includes is inlined, and only once.
    headers = {Path(h).name for f in KERNELS.rglob("*") if f.suffix in (".metal", ".h") for h in _local_includes(f.read_text())}
    for h in headers:
        assert msl.count(f'#line 1 "{h}"') == 1, f"{h} inlined {msl.count(f'#line 1 {h!r}')} times"
    # Nothing of the kernels is lost: each source line appears in the library.
    lines = set(msl.splitlines())
    for f in KERNELS.rglob("*"):
        if f.suffix in (".metal", ".h"):
            for line in f.read_text().splitlines():
                if not re.match(r'\s*#\s*(include\s*"|pragma\s+once)', line):
                    assert line in lines, f"{f.name}: line missing from the library: {line!r}"


def test_generated_file_compiles_and_holds_the_exact_text(embedded, tmp_path):
    """The raw string survives C++ compilation byte for byte (backslashes, quotes, trigraph-like text)."""
    out, msl = embedded
    main = tmp_path / "main.cpp"
    main.write_text('#include <cstdio>\n#include "msl_source.h"\nint main() { std::fputs(volconv::metal::kMslSource, stdout); }\n')
    exe = tmp_path / "print_msl"
    _run([_cxx(), "-std=c++17", f"-I{HOST}", main, out, "-o", exe])
    assert _run([exe]).stdout == msl


def test_embedding_is_stable(embedded):
    """Re-running on unchanged kernels leaves the file alone (no needless rebuilds)."""
    out, _ = embedded
    before = out.stat().st_mtime_ns
    _run([shutil.which("cmake"), f"-DMSL_DIR={KERNELS}", f"-DOUTPUT={out}", "-P", HOST / "embed_msl.cmake"])
    assert out.stat().st_mtime_ns == before


def test_embedded_source_compiles_through_the_emulator_shim(embedded, tmp_path):
    """The one-file library is valid MSL as far as the emulator models it:
    compiled as C++ against the shim, exactly like metal/*.metal are."""
    clang = shutil.which("clang++-19")
    if clang is None or not (SHIM / "metal_stdlib").is_file():
        pytest.skip("needs clang++-19 and the emulator shim (tests/emulator/shim)")
    _, msl = embedded
    library = tmp_path / "library.metal"
    library.write_text(msl)
    _run([clang, "-std=c++17", "-x", "c++", "-fsyntax-only", "-Wno-unknown-attributes", f"-I{SHIM}", library])


# ---------------------------------------------------------------- portable buffer decisions


def test_portable_buffer_decisions(tmp_path):
    """csrc/metal/portable: zero-copy vs staging, gather/scatter with dtype conversion."""
    exe = tmp_path / "buffers_test"
    srcs = [HOST / "portable" / "buffers_test.cpp", HOST / "portable" / "buffers.cpp",
            ROOT / "csrc" / "core" / "dtype.cpp", ROOT / "csrc" / "core" / "tensor.cpp"]
    flags = ["-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'csrc' / 'include'}"]
    if sys.platform == "linux":
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    _run([_cxx(), *flags, *srcs, "-o", exe])
    assert "all passed" in _run([exe]).stdout
