#!/bin/bash
# The CUDA backend's checks in one batch on a machine with an NVIDIA GPU,
# torch and the nvidia-cudnn wheel (the device tool's H200): build and
# install, compile the cuDNN declarations against the real headers, the GPU
# test files, compute-sanitizer memcheck and racecheck on the drivers, then
# the bench. Each step has a time limit and prints its seconds; the first
# failure does not stop the others (each prints its own verdict).
#   bash tests/cuda/device_checks.sh [--no-sanitizer] [--no-bench]
cd "$(dirname "$0")/../.." || exit 1
t0=$(date +%s)
stamp() { echo "== $1 ($(($(date +%s) - t0)) s)"; }
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-16}
python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -3
stamp build
cudnn_inc=$(python3 -c "import nvidia.cudnn as m, os; print(os.path.join(list(m.__path__)[0], 'include'))")
cuda_inc=$(dirname "$(command -v nvcc)")/../include
g++ -std=c++17 -fsyntax-only -I"$cudnn_inc" -I"$cuda_inc" tests/cuda/cudnn_api_check.cpp && echo "cudnn_api_check: ok"
stamp "cuDNN declarations"
timeout "${PYTEST_TIMEOUT:-240}" python3 -m pytest -q -p no:cacheprovider tests/test_cuda_cudnn.py tests/test_cuda_cudnn_transpose.py \
  tests/test_cuda_depthwise.py tests/test_params_cache.py tests/test_torch_cuda.py tests/test_cuda_dlpack.py \
  tests/test_cuda_jax.py tests/test_nonfinite_depthwise_devices.py tests/test_nonfinite_dense_cuda.py 2>&1 | tail -8
stamp pytest
if [[ " $* " != *" --no-sanitizer "* ]]; then
  # The six runs at once (each is mostly start-up and slowed kernels).
  logs=$(mktemp -d)
  for tool in memcheck racecheck; do
    for flag in kernels --cudnn --pairs; do
      (timeout "${SANITIZER_TIMEOUT:-150}" compute-sanitizer --tool "$tool" --error-exitcode 1 python3 tests/cuda_sanitizer_driver.py \
        ${flag/kernels/} >"$logs/$tool$flag" 2>&1; echo "exit $?" >>"$logs/$tool$flag") &
    done
  done
  wait
  for f in "$logs"/*; do
    echo "compute-sanitizer $(basename "$f"):"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|runs checked|^exit|Error|error" "$f" | head -5 | sed 's/^/  /'
  done
  stamp sanitizer
fi
if [[ " $* " != *" --no-bench "* ]]; then
  timeout "${BENCH_TIMEOUT:-150}" python3 bench/conv3d_cuda.py --repeats 10 2>&1 | tail -45
  stamp bench
fi
