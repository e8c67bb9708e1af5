"""Every Python example in README.md runs as written (in order, sharing one
namespace, as a reader pasting them into one session would)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_examples_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no Python examples"
    namespace: dict = {}
    for block in blocks:
        if "import mlx" in block and importlib.util.find_spec("mlx") is None:
            continue  # "From MLX" needs mlx, which not every test environment has (cibuildwheel on Linux)
        exec(compile(block, "README.md", "exec"), namespace)


def test_quickstart_example_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "spot checks against float64: OK" in result.stdout
