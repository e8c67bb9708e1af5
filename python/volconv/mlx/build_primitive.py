"""python -m volconv.mlx.build_primitive: compiles volconv's conv3d as an MLX
primitive against the installed mlx and volconv (needs CMake, a C++20
compiler and `pip install nanobind`). volconv.mlx.conv3d then joins MLX's
lazy graph and mx.compile; `volconv.mlx.route()` says which route runs."""

from __future__ import annotations

import sys

from ._native import build, cache_dir, primitive


def main() -> int:
    print(f"building into {cache_dir()} ...", flush=True)
    path = build(verbose="-v" in sys.argv[1:])
    primitive.cache_clear()
    if primitive() is None:
        print(
            f"built {path}, but mlx arrays do not pass into it: the nanobind used here has another ABI "
            "than mlx's; volconv.mlx keeps the Python route",
            file=sys.stderr,
        )
        return 1
    print(f"built {path}: volconv.mlx.conv3d now runs as an MLX primitive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
