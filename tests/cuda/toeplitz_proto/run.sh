#!/bin/bash
# PROTOTYPE (not used by volconv): the 16-bit depthwise 3x3x3 forward /
# input gradient on tensor cores, each channel's filter row a banded
# (Toeplitz) B of mma.sync along W (tc_toeplitz.cuh), against main's FFMA
# tiled kernel, on a machine with an NVIDIA GPU of compute capability 9.0
# and nvcc:
#   bash tests/cuda/toeplitz_proto/run.sh [parts|profile]
# no argument: edge and bench shapes, bf16 and fp16, three configurations
# (agreement, NaN/inf placement with non-finite inputs, times); parts: the
# large shape with parts of each step skipped (where the time goes);
# profile: the large shape once each, for ncu.
cd "$(dirname "$0")" || exit 1
nvcc -std=c++17 -arch=sm_90 -O3 -I../../../csrc/include proto.cu -o proto || exit 1
./proto "${1:-}"
