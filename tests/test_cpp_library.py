"""volconv as a C++ library: the pure-CMake build and its ctest suite, and the
examples/cpp consumer project built against the pip-installed package (by
`python -m volconv --cmake-dir`, by CMAKE_PREFIX_PATH, and as
scikit-build-core's `cmake.root` entry point hands it over) and against a
plain `cmake --install` prefix. Each CMake build happens once per session."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cpp"


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _missing_tools() -> str | None:
    if shutil.which("cmake") is None:
        return "cmake is not installed: the C++ library tests need it"
    if _cxx_compiler() is None:
        return "no C++ compiler (CXX, c++, g++ or clang++) found"
    return None


_MISSING = _missing_tools()
if _MISSING:
    # CI sets VOLCONV_REQUIRE_CPP_TESTS=1 so that a missing tool fails the run instead of hiding the tests.
    if os.environ.get("VOLCONV_REQUIRE_CPP_TESTS") == "1":
        raise RuntimeError(f"VOLCONV_REQUIRE_CPP_TESTS=1 but {_MISSING}")
    pytest.skip(_MISSING, allow_module_level=True)

GENERATOR = ["-G", "Ninja"] if shutil.which("ninja") else []
# A consumer's environment: nothing inherited that could point CMake at a volconv.
ENV = {k: v for k, v in os.environ.items() if k not in ("CMAKE_PREFIX_PATH", "volconv_DIR", "volconv_ROOT")}


def run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], check=False, cwd=cwd, env=ENV, capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return proc


def cmake_build(source: Path, build: Path, *defines: str) -> Path:
    run(["cmake", "-S", source, "-B", build, *GENERATOR, "-DCMAKE_BUILD_TYPE=Release", *defines])
    run(["cmake", "--build", build, "--parallel", "2"])
    return build


@pytest.fixture(scope="module")
def core_build(tmp_path_factory) -> Path:
    """The pure-CMake build (no Python) with the C++ tests. VOLCONV_CPP_BUILD_DIR
    names a build tree to reuse (CI's own pure-CMake step): it is configured
    and built again here with these options, which costs only what changed."""
    reuse = os.environ.get("VOLCONV_CPP_BUILD_DIR")
    build = Path(reuse).resolve() if reuse else tmp_path_factory.mktemp("core-build")
    return cmake_build(ROOT, build, "-DVOLCONV_PYTHON=OFF", "-DVOLCONV_TESTS=ON")


@pytest.fixture(scope="module")
def install_prefix(core_build, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("prefix")
    run(["cmake", "--install", core_build, "--prefix", prefix])
    return prefix


@pytest.fixture(scope="module")
def wheel_cmake_dir(tmp_path_factory) -> Path:
    # Run from an empty folder so the source tree cannot shadow the installed package.
    cwd = tmp_path_factory.mktemp("cwd")
    out = run([sys.executable, "-m", "volconv", "--cmake-dir"], cwd=cwd).stdout.strip()
    path = Path(out)
    assert (path / "volconvConfig.cmake").is_file(), out
    return path


def build_and_run_example(build: Path, *defines: str) -> str:
    cmake_build(EXAMPLE, build, *defines)
    exe = build / ("app.exe" if os.name == "nt" else "app")
    out = run([exe]).stdout
    assert "OK" in out.splitlines()[-1], out
    assert "bad call refused: [conv3d] The number of groups must divide" in out, out
    return out


def test_pure_cmake_build_and_ctest(core_build):
    proc = run(["ctest", "--test-dir", core_build, "--output-on-failure"])
    assert "100% tests passed" in proc.stdout, proc.stdout
    for name in ("test_shape_math", "test_validation", "test_conv3d_parity"):
        assert name in proc.stdout


def test_install_tree(install_prefix):
    files = {p.relative_to(install_prefix).as_posix() for p in install_prefix.rglob("*") if p.is_file()}
    cmake_dirs = {Path(f).parent.as_posix() for f in files if f.endswith("/volconvConfig.cmake")}
    assert len(cmake_dirs) == 1, files
    cmake_dir = cmake_dirs.pop()
    assert f"{cmake_dir}/volconvConfigVersion.cmake" in files
    assert f"{cmake_dir}/volconvTargets.cmake" in files
    assert "include/volconv/volconv.h" in files
    assert any(Path(f).name in ("libvolconv.a", "volconv.lib") for f in files), files
    # The public headers carry no Python, nanobind or Objective-C.
    for header in (install_prefix / "include" / "volconv").glob("*.h"):
        text = header.read_text()
        for word in ("Python.h", "nanobind", "pybind", "#import", "@interface", "objc"):
            assert word not in text, f"{header.name} mentions {word}"


def test_example_against_install_prefix(install_prefix, tmp_path_factory):
    build_and_run_example(tmp_path_factory.mktemp("ex-prefix"), f"-DCMAKE_PREFIX_PATH={install_prefix}")


def test_example_against_build_tree(core_build, tmp_path_factory):
    build_and_run_example(tmp_path_factory.mktemp("ex-build-tree"), f"-Dvolconv_DIR={core_build / 'csrc'}")


def test_example_against_wheel_cmake_dir(wheel_cmake_dir, tmp_path_factory):
    out = build_and_run_example(tmp_path_factory.mktemp("ex-wheel-dir"), f"-Dvolconv_DIR={wheel_cmake_dir}")
    import volconv

    assert f"volconv {volconv.__version__}:" in out


def test_example_against_wheel_prefix_path(wheel_cmake_dir, tmp_path_factory):
    # The package folder is an install prefix: <pkg>/lib/cmake/volconv.
    package_dir = Path(run([sys.executable, "-m", "volconv", "--prefix"], cwd=wheel_cmake_dir).stdout.strip())
    assert package_dir == wheel_cmake_dir.parents[2]
    assert (package_dir / "__init__.py").is_file()
    include = Path(
        run([sys.executable, "-m", "volconv", "--include-dir"], cwd=wheel_cmake_dir).stdout.strip()
    )
    assert (include / "volconv" / "volconv.h").is_file()
    build_and_run_example(tmp_path_factory.mktemp("ex-wheel-prefix"), f"-DCMAKE_PREFIX_PATH={package_dir}")


def test_example_via_cmake_root_entry_point(wheel_cmake_dir, tmp_path_factory):
    # scikit-build-core sets <name>_ROOT to the module the `cmake.root` entry
    # point names; a downstream project's find_package(volconv) then needs no hint.
    eps = [ep for ep in importlib.metadata.entry_points(group="cmake.root") if ep.name == "volconv"]
    assert eps, "the installed volconv declares no cmake.root entry point"
    root = Path(eps[0].load().__file__).parent
    assert root.resolve() == wheel_cmake_dir.parents[2].resolve()
    build_and_run_example(tmp_path_factory.mktemp("ex-wheel-root"), f"-Dvolconv_ROOT={root}")


def test_version_file_rejects_other_minor(install_prefix, tmp_path_factory):
    import volconv

    major, minor, _ = (int(v) for v in volconv.__version__.split("."))
    src = tmp_path_factory.mktemp("ver-src")
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(v LANGUAGES CXX)\n"
        f"find_package(volconv {major}.{minor + 1} CONFIG QUIET)\n"
        'if(volconv_FOUND)\n  message(FATAL_ERROR "a newer minor version must not be accepted")\nendif()\n'
        f"find_package(volconv {major}.{minor} CONFIG REQUIRED)\n"
    )
    run(["cmake", "-S", src, "-B", src / "build", *GENERATOR, f"-DCMAKE_PREFIX_PATH={install_prefix}"])


def test_versions_agree():
    """project(VERSION) in CMake, version.h, pyproject.toml and the module say the same."""
    import re

    import volconv

    cmake = re.search(r"project\(volconv VERSION ([0-9.]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    header = (ROOT / "csrc" / "include" / "volconv" / "version.h").read_text()
    parts = [re.search(rf"VOLCONV_VERSION_{k} (\d+)", header).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    pyproject = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(
        1
    )
    assert cmake == ".".join(parts) == pyproject == volconv.__version__


# The same bad calls through C++ and Python: (input, weight, stride, pad lo, pad hi, dilation, groups).
MESSAGE_CASES = [
    ((1, 3, 3, 3, 2), (2, 1, 1, 1, 2), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 0),
    ((1, 3, 3, 3, 2), (2, 1, 1, 1, 2), (1, 0, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 3, 2), (2, 1, 1, 1, 2), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 0), 1),
    ((1, 3, 3, 3, 2), (2, 1, 1, 1, 2), (1, 1, 1), (0, -1, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 3, 2), (2, 1, 1, 1, 2), (2**60, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 3, 4), (2, 1, 1, 1, 3), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 3, 4), (6, 1, 1, 1, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 3),
    ((1, 3, 3, 3, 1), (1, 2, 4, 2, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 4, 1), (1, 1, 1, 3, 1), (1, 1, 1), (0, 0, 1), (0, 0, 0), (1, 1, 2), 1),
    ((1, 3, 3, 3, 0), (1, 1, 1, 1, 0), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((1, 3, 3, 3, 2), (1, 1, 0, 1, 2), (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1),
    ((2, 5, 6, 7, 4), (6, 3, 2, 3, 2), (2, 1, 3), (1, 0, 2), (0, 1, 1), (1, 2, 1), 2),  # valid
]


@pytest.mark.parametrize("case", MESSAGE_CASES, ids=lambda c: "x".join(map(str, c[0])) + f"-g{c[6]}")
def test_cpp_and_python_messages_match(core_build, case):
    import volconv

    in_shape, wt_shape, stride, lo, hi, dil, groups = case
    tool = core_build / "tests" / "cpp" / "volconv_error_message"
    args = [*in_shape, *wt_shape, *stride, *lo, *hi, *dil, groups]
    cpp = run([tool, *args]).stdout.strip()
    x = np.zeros(in_shape, np.float32)
    w = np.zeros(wt_shape, np.float32)
    try:
        y = volconv.conv3d(
            x, w, stride=stride, padding=(lo, hi), dilation=dil, groups=groups, stream=volconv.cpu
        )
        py = "ok (" + ",".join(map(str, y.shape)) + ")"
    except ValueError as e:
        # Python may add a layout hint after the shared message (volconv/_conv.py).
        py = f"invalid_argument: {e}".split(" The shapes look channels-first")[0]
    assert cpp == py


@pytest.mark.parametrize("groups", [2, 3])
def test_readme_cpp_example_builds_and_runs(wheel_cmake_dir, tmp_path_factory, groups):
    """The C++ program in README.md, pasted into a project with the README's
    two CMake lines, builds against the wheel and prints what it promises; with
    groups = 3 it prints the README's error and exits with 1 (not an abort)."""
    import re

    readme = (ROOT / "README.md").read_text()
    (program,) = [b for b in re.findall(r"```cpp\n(.*?)```", readme, flags=re.S) if "int main" in b]
    assert "params.groups = 2;" in program
    program = program.replace("params.groups = 2;", f"params.groups = {groups};")
    src = tmp_path_factory.mktemp("readme-example")
    (src / "main.cpp").write_text(program)
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(readme_example LANGUAGES CXX)\n"
        "find_package(volconv CONFIG REQUIRED)\nadd_executable(app main.cpp)\n"
        "target_link_libraries(app PRIVATE volconv::volconv)\n"
    )
    build = cmake_build(src, tmp_path_factory.mktemp("readme-build"), f"-Dvolconv_DIR={wheel_cmake_dir}")
    app = build / ("app.exe" if os.name == "nt" else "app")
    if groups == 2:
        out = run([app]).stdout
        assert out.strip() == "y[0,1,1,1,0] = 27", out
        return
    proc = subprocess.run([str(app)], capture_output=True, text=True, env=ENV)
    (promised,) = re.findall(r"exits with 1:\n`(\[conv3d\][^`]*)`", readme)
    assert (proc.returncode, proc.stderr.strip()) == (1, promised), proc
