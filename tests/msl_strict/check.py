"""The strict MSL front-end check: compiles MSL with stock clang in OpenCL
C++ mode against our declarations-only metal_stdlib (include/), where
device/constant/threadgroup/thread are distinct address spaces, program-scope
variables must be `constant` and `double` is an error; then keeps only the
diagnostics of the rules the header models (RULES), as file:line: rule.

    python tests/msl_strict/check.py [FILE.metal ...]
        (default: metal/*.metal, the embedded library, and lint.py over metal/)

clang's other complaints (a constructor or function the header does not
declare) are not Apple's rules and are not counted; `--all` shows them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
INCLUDE = HERE / "include"
KERNELS = ROOT / "metal"

# The rules the header models, each with the spec rule it stands for.
RULES = {
    "program-scope-not-constant": "MSL 3.1, Address Spaces (constant): program-scope (and static) variables are in the constant address space",
    "unqualified-pointer": "MSL 3.1, Address Spaces: a pointer or reference names its address space (lint.py)",
    "address-space-mismatch": "MSL 3.1, Address Spaces: pointers to different address spaces do not convert to each other",
    "automatic-variable-address-space": "MSL 3.1, Address Spaces: device/constant are not allowed on automatic (function-scope) variables",
    "threadgroup-outside-kernel": "MSL 3.1, Address Spaces (threadgroup): threadgroup variables are declared only in a kernel's function scope",
    "bfloat-implicit-conversion": "MSL 3.1, bfloat: float and half convert to bfloat only explicitly",
    "bfloat-half-mixing": "MSL 3.1, bfloat: bfloat and half do not mix in one operator",
    "double": "MSL 3.1, Scalar Data Types: double is not supported",
}

# OpenCL C++ 2021 with the features MSL lacks turned off: then a program-scope
# variable must be __constant, there is no generic address space to hide a
# mismatch, and double is an error.
CLANG_FLAGS = [
    "-x",
    "clcpp",
    "-cl-std=clc++2021",
    "-cl-no-stdinc",
    "-Xclang",
    "-cl-ext=-__opencl_c_program_scope_global_variables,-__opencl_c_generic_address_space,"
    "-__opencl_c_pipes,-__opencl_c_device_enqueue,-cl_khr_fp64,-__opencl_c_fp64,+cl_khr_fp16",
    # What Apple's compiler predefines for MSL 3.1 (MLX tests __METAL__).
    "-D__METAL_VERSION__=310",
    "-D__METAL__=1",
    "-ferror-limit=0",
    "-fno-color-diagnostics",
    "-fno-caret-diagnostics",
    "-fno-diagnostics-show-option",
    "-Wno-unknown-attributes",
    # The two warnings that carry bfloat's conversion rules (see _classify).
    "-Wimplicit-float-conversion",
    "-Wdouble-promotion",
]


def enabled_features(clang: str) -> set[str]:
    """The OpenCL features/extensions clang reports enabled under CLANG_FLAGS (a misspelt
    -cl-ext entry is ignored silently, so the flags are checked by what they produce)."""
    out = _run([clang, *CLANG_FLAGS, "-E", "-dM", "-"], stdin="").stdout
    return set(re.findall(r"#define ((?:__opencl_c|cl_khr)_\w+) 1", out))


@dataclass(frozen=True, order=True)
class Diagnostic:
    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"


def find_clang() -> str | None:
    """Stock clang 19 or newer (the flags above are checked against 19)."""
    for name in ("clang-19", "clang"):
        path = shutil.which(name)
        version = re.search(r"clang version (\d+)", _run([path, "--version"]).stdout) if path else None
        if version and int(version.group(1)) >= 19:
            return path
    return None


def _run(cmd: list, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=True)


# `template [[host_name("x")]] [[kernel]] ...`: attributes after `template` in
# an explicit instantiation are MSL, not C++; they go (blanked, so columns
# stay) before clang parses the instantiation, which is what checks the body.
_INSTANTIATION_ATTRS = re.compile(r"\btemplate(\s*(?:\[\[[^;{}]*?\]\]\s*)+)(?=[A-Za-z_])")


def _strip_instantiation_attributes(text: str) -> str:
    return _INSTANTIATION_ATTRS.sub(lambda m: "template" + re.sub(r"[^\n]", " ", m.group(1)), text)


_DIAG = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<col>\d+): (?P<kind>error|warning|note): (?P<msg>.*)$")


def _clang_diagnostics(clang: str, source: Path, include_dirs: list[Path]) -> list[dict]:
    """clang's errors and warnings for `source`, each with its notes."""
    incs = [f"-I{d}" for d in [INCLUDE, source.parent, *include_dirs]]
    pre = _run([clang, *CLANG_FLAGS, *incs, "-E", source])
    if pre.returncode != 0:
        raise RuntimeError(f"preprocessing {source} failed:\n{pre.stderr}")
    text = _strip_instantiation_attributes(pre.stdout)
    out = _run([clang, *CLANG_FLAGS, "-fsyntax-only", "-"], stdin=text)
    diags: list[dict] = []
    for line in out.stderr.splitlines():
        m = _DIAG.match(line)
        if not m:
            continue
        d = m.groupdict()
        if d["kind"] == "note":
            if diags:
                diags[-1]["notes"].append(d["msg"])
        else:
            d["notes"] = []
            diags.append(d)
    return diags


_AS = r"__(?:global|local|constant|private)"


def _pointee_spaces(message: str) -> set[str]:
    """Address spaces of the pointees/referents among the quoted types."""
    spaces = set()
    for quoted in re.findall(r"'([^']*)'", message):
        head = re.split(r"[*&]", quoted, maxsplit=1)
        if len(head) == 2:
            found = re.findall(_AS, head[0])
            if found:  # an unqualified (dependent, default) type says nothing
                spaces.add(found[-1])
    return spaces


def _names_two_spaces(text: str) -> bool:
    """True when the text is about two different named address spaces."""
    named = set(re.findall(r"address space '(" + _AS + r")'", text))
    return len(named) > 1 or "changes address space of pointer" in text or len(_pointee_spaces(text)) > 1


def _classify(d: dict) -> str | None:
    """The rule a clang diagnostic reports, or None when it is none of RULES."""
    msg, notes = d["msg"], d["notes"]
    everything = " ".join([msg, *notes])
    if d["kind"] == "warning":
        m = re.match(
            r"implicit conversion (loses|increases) floating-point precision: (.*?)'\)? to '(.*)$", msg
        )
        if not m:
            return None
        source, target = m.group(2), m.group(3)
        # float -> bfloat loses precision: clang warns, MSL rejects (no implicit float -> bfloat).
        if m.group(1) == "loses" and "bfloat" in target and "half" not in source:
            return "bfloat-implicit-conversion"
        # In `b * h` clang promotes bfloat to half: the mixing MSL rejects.
        if ("bfloat" in source and "half" in target) or ("half" in source and "bfloat" in target):
            return "bfloat-half-mixing"
        return None
    if msg.startswith("use of type 'double' requires"):
        return "double"
    if "must reside in constant address space" in msg:
        return "program-scope-not-constant"
    if msg.startswith("non-kernel function variable cannot be declared in local address space"):
        return "threadgroup-outside-kernel"
    if re.match(
        r"(function scope|non-kernel function) variable cannot be declared in (global|constant) address space",
        msg,
    ):
        return "automatic-variable-address-space"
    if (
        "bfloat" in msg
        and "half" in msg
        and re.search(r"cannot initialize|assigning|no viable conversion", msg)
    ):
        return "bfloat-implicit-conversion"
    # MSL declares the implicit copy/move members for every address space and
    # has no unnamed one; OpenCL C++ without the generic space gives implicit
    # members and temporaries an unnamed ("default") space: not an MSL error.
    if re.search(
        r"implicit (copy|move) (constructor|assignment)|default address space|address space unqualified",
        everything,
    ):
        return None
    # Two named address spaces that do not convert: in a pointer conversion,
    # a reference binding, an argument passed, a cast. A failed overload
    # resolution counts only when every candidate failed for that reason.
    candidates = [n for n in notes if n.startswith("candidate")]
    if candidates:
        return "address-space-mismatch" if all(map(_names_two_spaces, candidates)) else None
    if any(map(_names_two_spaces, (msg, *notes))):
        return "address-space-mismatch"
    return None


def _strip_comments_and_strings(text: str) -> str:
    """Comments and string literals blanked (newlines kept), so braces and lines count true."""

    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.S)


def kernel_bodies(text: str) -> list[tuple[int, int]]:
    """Offsets (open brace, close brace) of the bodies of [[kernel]] functions."""
    code = _strip_comments_and_strings(text)
    bodies = []
    for m in re.finditer(r"\[\[\s*kernel\s*(?:,[^\]]*)?\]\]", code):
        if code[: m.start()].rsplit("\n", 1)[-1].lstrip().startswith("#"):
            continue  # inside a macro definition (an instantiation)
        i = code.find("(", m.end())
        depth = 0
        while i < len(code):
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            if depth == 0:
                break
            i += 1
        brace, semi = code.find("{", i), code.find(";", i)
        if brace < 0 or (0 <= semi < brace):
            continue  # a declaration or an explicit instantiation
        depth, j = 0, brace
        while j < len(code):
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            if depth == 0:
                break
            j += 1
        bodies.append((brace, j))
    return bodies


def _in_kernel_body(text: str, line: int, col: int) -> bool:
    """True when (line, col) is inside the body of a kernel (any block of it)."""
    lines = text.split("\n")
    offset = sum(len(s) + 1 for s in lines[: line - 1]) + col - 1
    return any(open_ < offset < close for open_, close in kernel_bodies(text))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def compile_check(
    source: Path,
    clang: str,
    include_dirs: list[Path] = (),
    sources: dict[str, Path] | None = None,
    all_errors=False,
) -> list[Diagnostic]:
    """The rule diagnostics of one MSL file (or, with all_errors, every error too).
    `sources` maps the names in #line markers (the embedded library) to files."""
    source = Path(source).resolve()
    found: set[Diagnostic] = set()
    for d in _clang_diagnostics(clang, source, list(include_dirs)):
        rule = _classify(d)
        path = Path(d["file"])
        if not path.is_absolute() or not path.is_file():
            path = (sources or {}).get(path.name, path)
        if rule == "threadgroup-outside-kernel" and path.is_file():
            if _in_kernel_body(path.read_text(), int(d["line"]), int(d["col"])):
                continue  # allowed: declared in a kernel's body
        if rule is None and (not all_errors or d["kind"] != "error"):
            continue
        found.add(Diagnostic(_display(path), int(d["line"]), rule or "(not a modelled rule)", d["msg"]))
    return sorted(found)


def embedded_library(out_dir: Path) -> Path:
    """The single-source library the Metal host compiles, produced by the build's own
    step (csrc/metal/embed_msl.cmake), written out as a .metal file."""
    cmake = shutil.which("cmake")
    if cmake is None:
        raise RuntimeError("cmake is needed to produce the embedded library")
    cpp = out_dir / "msl_source.cpp"
    r = _run(
        [cmake, f"-DMSL_DIR={KERNELS}", f"-DOUTPUT={cpp}", "-P", ROOT / "csrc" / "metal" / "embed_msl.cmake"]
    )
    if r.returncode != 0:
        raise RuntimeError(f"embed_msl.cmake failed:\n{r.stderr}")
    m = re.search(r'R"volconv_msl\((.*)\)volconv_msl"', cpp.read_text(), re.S)
    library = out_dir / "embedded_library.metal"
    library.write_text(m.group(1))
    return library


def check_kernels(clang: str, all_errors: bool = False) -> dict[str, list[Diagnostic]]:
    """Rule diagnostics of every metal/*.metal file and of the embedded library."""
    sources = {p.name: p for p in KERNELS.iterdir() if p.suffix in (".metal", ".h")}
    results = {
        _display(f): compile_check(f, clang, all_errors=all_errors) for f in sorted(KERNELS.glob("*.metal"))
    }
    with tempfile.TemporaryDirectory() as tmp:
        library = embedded_library(Path(tmp))
        results["embedded library"] = compile_check(library, clang, sources=sources, all_errors=all_errors)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("-I", dest="include", action="append", type=Path, default=[])
    ap.add_argument("--all", action="store_true", help="also print clang errors that are not modelled rules")
    args = ap.parse_args(argv)
    clang = os.environ.get("VOLCONV_CLANG") or find_clang()
    if clang is None:
        print("clang 19 not found", file=sys.stderr)
        return 2
    if args.files:
        results = {}
        for f in args.files:
            try:
                results[str(f)] = compile_check(f, clang, args.include, all_errors=args.all)
            except RuntimeError as e:  # e.g. a header the declarations-only stdlib does not provide
                print(f"== {f}: not checked: {str(e).splitlines()[-1]}")
    else:
        import lint  # the address-space lint, which the compile cannot see

        results = check_kernels(clang, args.all)
        results["lint of metal/"] = lint.lint_kernels()
    total = 0
    for unit, diags in results.items():
        counted = [d for d in diags if d.rule in RULES]
        total += len(counted)
        print(f"== {unit}: {len(counted)} rule diagnostic(s)")
        for d in diags:
            print(d)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
