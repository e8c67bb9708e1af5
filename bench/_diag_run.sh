#!/bin/bash
# EXPERIMENT (diagnosis call only): build, the new CUDA tests, the dense diagnosis, GPU mutations.
export CMAKE_BUILD_PARALLEL_LEVEL=16
t0=$(date +%s)
python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -3
echo "== build $(($(date +%s) - t0)) s"
python3 -c "import volconv as vc; print(vc._core._gpu_backend(), vc.unavailable_reason(vc.gpu))"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_cudnn_transpose.py tests/test_cuda_cudnn.py 2>&1 | tail -25
echo "== tests $(($(date +%s) - t0)) s"
timeout 60 python3 bench/_diag_dense.py --profile float16 bfloat16 float32 2>&1
for e in 8 1 2 4 5; do
  echo "== VOLCONV_CUDNN_EXP=$e"
  VOLCONV_CUDNN_EXP=$e timeout 40 python3 bench/_diag_dense.py float16 bfloat16 2>&1 | grep -v "^EXP" 
done
VOLCONV_CUDNN_EXP=8 timeout 40 python3 bench/_diag_dense.py float16 2>&1 | grep "^EXP" | sort | uniq -c | sort -rn | head -12
echo "== diag $(($(date +%s) - t0)) s"
mutate() {  # file old new: apply, rebuild, run the float32 transpose tests, restore
  cp "$1" /tmp/mut.bak
  python3 - "$@" <<'PY'
import sys
p, o, n = sys.argv[1:4]
s = open(p).read()
assert o in s
open(p, "w").write(s.replace(o, n, 1))
PY
  python3 -m pip install --no-build-isolation --no-deps -q . 2>&1 | tail -2
  echo "== mutation in $1: $2 -> $3"
  timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_cudnn_transpose.py -k float32 2>&1 | tail -2
  cp /tmp/mut.bak "$1"
}
mutate csrc/cuda/filter_transform.cu "so += t.swap_channels ? (g * t.a + i)" "so += t.swap_channels ? (g * t.b + i)"
mutate csrc/cuda/filter_transform.cu "(t.reverse_taps ? t.kernel[d] - 1 - k[d] : k[d])" "k[d]"
echo "== all $(($(date +%s) - t0)) s"
