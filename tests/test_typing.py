"""What mypy (and an IDE) sees of the public API: tests/typing/typed_usage*.py
must type-check (numpy in -> numpy out, torch -> torch, an MLX-shaped array ->
its own type; lists, numpy integers, MLX devices accepted), and
tests/typing/typed_misuse.py must fail on exactly its lines marked `# error`.
mypy runs once on the installed package, as a user's mypy would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
pytest.importorskip("torch")

TYPING = Path(__file__).resolve().parent / "typing"
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory) -> dict[str, dict[int, str]]:
    """{file name: {line: message}} for every mypy error in tests/typing."""
    cache = tmp_path_factory.mktemp("mypy_cache")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(cache),
            "--show-error-codes",
            "--no-error-summary",
            str(TYPING),
        ],
        cwd=cache,  # not the source tree: mypy must read the installed volconv
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2: mypy itself failed
    errors: dict[str, dict[int, str]] = {}
    for line in proc.stdout.splitlines():
        m = ERROR.match(line)
        if m:
            errors.setdefault(Path(m["path"]).name, {})[int(m["line"])] = m["message"]
    return errors


@pytest.mark.parametrize("name", ["typed_usage.py", "typed_usage_mlx.py"])
def test_typical_calls_type_check(mypy_errors, name):
    assert mypy_errors.get(name, {}) == {}


def test_misuse_is_flagged_on_each_marked_line_only(mypy_errors):
    source = (TYPING / "typed_misuse.py").read_text().splitlines()
    marked = {i for i, text in enumerate(source, start=1) if text.rstrip().endswith("# error")}
    assert len(marked) >= 10
    got = mypy_errors.get("typed_misuse.py", {})
    assert set(got) == marked, {
        "unflagged": sorted(marked - set(got)),
        "unexpected": {i: got[i] for i in set(got) - marked},
    }
