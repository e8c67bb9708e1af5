"""Address-space lint for MSL: every pointer or reference names its address
space (device, constant, threadgroup or thread). The strict compile cannot see
this: an unqualified pointer is __private in OpenCL C++, not an error, while in
MSL it silently means `thread`, which is rarely what a kernel helper wants.

    python tests/msl_strict/lint.py [FILE ...]   (default: metal/*.metal and metal/*.h)

A declarator `*`/`&` is one that directly follows a type: a builtin or
declared type name (struct/class/typename/using/typedef), optionally with
template arguments, or `auto`. Multiplication and address-of never follow a
type name, so they are not mistaken for declarators.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from check import KERNELS, Diagnostic, _display, _strip_comments_and_strings

ADDRESS_SPACES = {
    "device",
    "constant",
    "threadgroup",
    "thread",
    "threadgroup_imageblock",
    "ray_data",
    "object_data",
}
BUILTIN_TYPES = {
    "void", "bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "half", "float", "bfloat",
    "size_t", "ptrdiff_t", "auto", "signed", "unsigned",
    *(f"{s}int{n}_t" for s in ("", "u") for n in (8, 16, 32, 64)),
    *(f"{t}{n}" for t in ("char", "uchar", "short", "ushort", "int", "uint", "long", "ulong", "half", "float",
                          "bfloat", "bool") for n in (2, 3, 4)),
    "vec", "simdgroup_matrix", "atomic", "atomic_int", "atomic_uint", "atomic_float",
}  # fmt: skip
# Words that may stand between the start of a declaration and its type.
QUALIFIERS = ADDRESS_SPACES | {
    "const",
    "volatile",
    "static",
    "constexpr",
    "inline",
    "typename",
    "struct",
    "class",
}

_TOKEN = re.compile(r"[A-Za-z_]\w*|::|&&|\d[\w.]*|\S")


def declared_types(code: str) -> set[str]:
    """Type names the file declares: struct/class X, typename/class template parameters, using X =, typedef."""
    names = set(re.findall(r"\b(?:struct|class|typename)\s+([A-Za-z_]\w*)", code))
    names |= set(re.findall(r"\busing\s+([A-Za-z_]\w*)\s*=", code))
    names |= set(re.findall(r"\btypedef\b[^;]*?\b([A-Za-z_]\w*)\s*;", code))
    return names


def _skip_back_template(tokens: list[str], i: int) -> int:
    """tokens[i] is '>': the index of its matching '<'."""
    depth = 0
    while i >= 0:
        if tokens[i] == ">":
            depth += 1
        elif tokens[i] == "<":
            depth -= 1
            if depth == 0:
                return i
        i -= 1
    return -1


def lint_text(text: str, types: set[str]) -> list[tuple[int, str]]:
    """(line, declarator text) of each pointer or reference that names no address space."""
    code = _strip_comments_and_strings(text)
    # Preprocessor lines (includes, macro definitions of the instantiation) are not declarations.
    code = re.sub(
        r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code, flags=re.M
    )
    found = []
    tokens, starts = [], []
    for m in _TOKEN.finditer(code):
        tokens.append(m.group(0))
        starts.append(m.start())
    known = BUILTIN_TYPES | types
    for i, tok in enumerate(tokens):
        if tok not in ("*", "&", "&&") or i == 0:
            continue
        # Find the type this declarator follows: [quals] Name[<...>] [quals] * / &
        j = i - 1
        if tokens[j] == "(":
            # `T (&name)[N]` declares a reference to an array; `T(*p)` is a cast of a dereference
            # and `T (*f)(...)` a function pointer, which has no address space.
            if tok != "&" or tokens[i + 2 : i + 3] != [")"]:
                continue
            j -= 1
        while j >= 0 and tokens[j] in {"const", "volatile"} | ADDRESS_SPACES:
            j -= 1
        after_type = set(tokens[j + 1 : i])
        if j >= 0 and tokens[j] == ">":
            j = _skip_back_template(tokens, j) - 1
        if j < 0 or tokens[j] not in known:
            continue
        # `(&acc)[N]` / `(*f)(...)` follow the type with a parenthesis; plain declarators follow it directly.
        k = j - 1
        while k >= 1 and tokens[k] == "::" and re.match(r"[A-Za-z_]", tokens[k - 1]):
            k -= 2
        before = set()
        while k >= 0 and tokens[k] in QUALIFIERS:
            before.add(tokens[k])
            k -= 1
        if k >= 0 and tokens[k] in ("return", "=", "case") and tok != "*":
            continue
        # `sizeof(T) * n`, `a < b & c`: a type followed by `)`/operators is an expression only when the type
        # was a cast's operand; a declarator needs the `*`/`&` then a name, `)`, `,`, `>`, `(` or `[`.
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if not (re.match(r"[A-Za-z_]", nxt) or nxt in (")", ",", ">", "(", "[", "*", "&", "...")):
            continue
        if (before | after_type) & ADDRESS_SPACES:
            continue
        line = code.count("\n", 0, starts[i]) + 1
        span = " ".join(tokens[k + 1 : i + 1])
        found.append((line, span))
    return found


def lint_file(path: Path, types: set[str] | None = None) -> list[Diagnostic]:
    text = Path(path).read_text()
    types = (types or set()) | declared_types(_strip_comments_and_strings(text))
    return [
        Diagnostic(_display(Path(path)), line, "unqualified-pointer", f"'{span}' names no address space")
        for line, span in lint_text(text, types)
    ]


def lint_kernels() -> list[Diagnostic]:
    """The lint over metal/: headers' type names count in the files that include them."""
    files = sorted(p for p in KERNELS.iterdir() if p.suffix in (".metal", ".h"))
    types = set()
    for f in files:
        types |= declared_types(_strip_comments_and_strings(f.read_text()))
    return [d for f in files for d in lint_file(f, types)]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    diags = [d for f in argv for d in lint_file(Path(f))] if argv else lint_kernels()
    for d in diags:
        print(d)
    print(f"{len(diags)} pointer(s)/reference(s) without an address space", file=sys.stderr)
    return 1 if diags else 0


if __name__ == "__main__":
    sys.exit(main())
