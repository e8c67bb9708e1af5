"""The C++ route: volconv's conv3d as an mlx::core::Primitive (eval_cpu +
vjp), which joins MLX's lazy graph and mx.compile. MLX's C++ ABI is not
stable, so the extension is compiled on the user's machine against the
installed mlx and volconv (`python -m volconv.mlx.build_primitive`) into a
cache folder named by both versions; another mlx version finds nothing there
and volconv.mlx keeps the Python route."""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import mlx.core as mx

import volconv

_NAME = "_volconv_mlx_primitive"
SOURCE = Path(__file__).resolve().parent / "_primitive"
# VOLCONV_MLX_PRIMITIVE=0 keeps the Python route even where the extension is built.
ENV = "VOLCONV_MLX_PRIMITIVE"


def cache_dir() -> Path:
    """Where the extension for this volconv, mlx and Python lives."""
    root = os.environ.get("VOLCONV_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "volconv"
    )
    key = f"mlx-primitive-volconv{volconv.__version__}-mlx{mx.__version__}-{sys.implementation.cache_tag}"
    return Path(root) / key


def build(dest: Path | None = None, verbose: bool = False) -> Path:
    """Compiles the extension (CMake, a C++20 compiler, nanobind) into
    `dest` (default: cache_dir()) and returns the module's path."""
    import nanobind

    dest = Path(dest) if dest is not None else cache_dir()
    work = dest / "build"
    # mlx is a namespace package: its files sit beside mlx.core's own module.
    mlx_root = Path(mx.__file__).resolve().parent
    prefix = Path(volconv.__file__).resolve().parent
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        "cmake",
        "-S",
        str(SOURCE),
        "-B",
        str(work),
        *generator,
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DMLX_DIR={mlx_root / 'share' / 'cmake' / 'MLX'}",
        f"-Dvolconv_DIR={prefix / 'lib' / 'cmake' / 'volconv'}",
        f"-Dnanobind_DIR={nanobind.cmake_dir()}",
        f"-DPython_EXECUTABLE={sys.executable}",
        f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={dest}",
    ]
    for cmd in (configure, ["cmake", "--build", str(work), "--parallel", "2"]):
        proc = subprocess.run(cmd, capture_output=not verbose, text=True)
        if proc.returncode:
            raise RuntimeError(
                f"[volconv.mlx] building the MLX primitive failed: {' '.join(cmd)}\n"
                f"{(proc.stdout or '')[-3000:]}{(proc.stderr or '')[-3000:]}"
            )
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    return dest / f"{_NAME}{suffix}"


@functools.cache
def primitive() -> Any:
    """The compiled extension for exactly this mlx and volconv, or None (not
    built, disabled by VOLCONV_MLX_PRIMITIVE=0, or built for another mlx)."""
    if os.environ.get(ENV) == "0":
        return None
    path = cache_dir() / f"{_NAME}{sysconfig.get_config_var('EXT_SUFFIX')}"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(_NAME, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The folder's name already carries the version; the module's own record is the second check.
    if module.mlx_version != mx.__version__:
        return None
    return module if _passes_arrays(module) else None


def _passes_arrays(module: Any) -> bool:
    """Whether mlx arrays cross into the extension: nanobind must share
    mlx.core's type registry (the same nanobind ABI), else every call would
    raise TypeError."""
    one = mx.zeros((1, 1, 1, 1, 1))
    try:
        module.conv3d(one, one, (1, 1, 1), (0, 0, 0), (0, 0, 0), (1, 1, 1), 1)  # lazy: nothing runs
    except TypeError:
        return False
    return True


def route() -> str:
    """ "primitive" where conv3d runs as an MLX primitive, else "python"."""
    return "primitive" if primitive() is not None else "python"
