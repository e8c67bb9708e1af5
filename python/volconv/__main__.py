"""`python -m volconv`: what this install is (--version, --info) and where C++
consumers find it (--cmake-dir, --prefix, --include-dir).

    cmake -S . -B build -Dvolconv_DIR="$(python -m volconv --cmake-dir)"

The package folder itself is a CMake install prefix (lib/, include/), so
`-DCMAKE_PREFIX_PATH="$(python -m volconv --prefix)"` works too."""

import argparse
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def cmake_dir() -> Path:
    """The folder holding volconvConfig.cmake inside the installed package."""
    for libdir in ("lib", "lib64"):
        candidate = _HERE / libdir / "cmake" / "volconv"
        if (candidate / "volconvConfig.cmake").is_file():
            return candidate
    raise FileNotFoundError(
        f"volconvConfig.cmake is not installed under {_HERE} "
        "(is this a source checkout rather than an installed wheel?)"
    )


def include_dir() -> Path:
    """The folder holding volconv/volconv.h inside the installed package."""
    path = _HERE / "include"
    if not (path / "volconv" / "volconv.h").is_file():
        raise FileNotFoundError(f"the volconv C++ headers are not installed under {_HERE}")
    return path


def info() -> str:
    """What runs here: the version, the CPU kernel set and thread count, and
    each device's availability with the reason when it is not."""
    import platform

    import volconv
    from volconv import _core

    lines = [
        f"volconv {volconv.__version__} (Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()})",
        f"CPU kernels: {_core._cpu_isa()} (this CPU supports: {', '.join(_core._cpu_supported_isas())})",
        f"CPU threads: {volconv.get_num_threads()}",
    ]
    for name, device in (("cpu", volconv.cpu), ("gpu", volconv.gpu)):
        reason = volconv.unavailable_reason(device)
        lines.append(
            f"{name}: " + ("available" if volconv.is_available(device) else f"not available: {reason}")
        )
    lines.append(f"default device: {volconv.default_device()}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m volconv", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--version", action="store_true", help="print the version")
    group.add_argument(
        "--info", action="store_true", help="print the CPU kernel set, thread count and GPU availability"
    )
    group.add_argument("--cmake-dir", action="store_true", help="print the directory of volconvConfig.cmake")
    group.add_argument(
        "--prefix", action="store_true", help="print the install prefix (for CMAKE_PREFIX_PATH)"
    )
    group.add_argument("--include-dir", action="store_true", help="print the directory of the C++ headers")
    args = parser.parse_args()
    try:
        if args.version:
            import volconv

            print(volconv.__version__)
        elif args.info:
            print(info())
        elif args.cmake_dir:
            print(cmake_dir())
        elif args.prefix:
            cmake_dir()  # fails clearly when the C++ library is not installed
            print(_HERE)
        elif args.include_dir:
            print(include_dir())
        else:
            import volconv

            print(f"volconv {volconv.__version__}; default device: {volconv.default_device()}")
            print("(--info for details, --help for the options)")
    except FileNotFoundError as e:
        print(f"python -m volconv: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
