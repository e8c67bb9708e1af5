#!/bin/bash
# Builds and runs the depthwise micro-benchmark (bench.cu) against the
# kernels of BASE (a commit; default main) on a machine with an NVIDIA GPU
# of compute capability 9.0 and nvcc:
#   bash tests/cuda/tiled_bench/run.sh [BASE] [race|profile]
# From a copy without git history, put BASE's csrc/cuda and csrc/core in
# tests/cuda/tiled_bench/base_src/ first.
cd "$(dirname "$0")" || exit 1
root=$(cd ../../.. && pwd)
if [[ ! -d base_src ]]; then
  mkdir -p base_src && git -C "$root" archive "${1:-main}" csrc/cuda csrc/core | tar -x --strip-components=1 -C base_src || exit 1
fi
flags=(-std=c++17 -arch=sm_90 -O3 -I"$root/csrc/include")
nvcc "${flags[@]}" -c bench.cu -o bench.o & nvcc "${flags[@]}" -c base.cu -o base.o & wait
nvcc -arch=sm_90 bench.o base.o -o bench && ./bench "${2:-}"
