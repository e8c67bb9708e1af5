"""`python -m volconv --cmake-dir`: where C++ consumers find volconvConfig.cmake."""

import argparse
import sys
from pathlib import Path


def cmake_dir() -> Path:
    here = Path(__file__).resolve().parent
    for libdir in ("lib", "lib64"):
        candidate = here / libdir / "cmake" / "volconv"
        if (candidate / "volconvConfig.cmake").is_file():
            return candidate
    raise FileNotFoundError(f"volconvConfig.cmake is not installed under {here}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m volconv")
    parser.add_argument("--cmake-dir", action="store_true", help="print the directory of volconvConfig.cmake")
    parser.add_argument("--include-dir", action="store_true", help="print the directory of the C++ headers")
    args = parser.parse_args()
    if args.cmake_dir:
        print(cmake_dir())
    elif args.include_dir:
        print(Path(__file__).resolve().parent / "include")
    else:
        import volconv

        print(f"volconv {volconv.__version__}; default device: {volconv.default_device()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
