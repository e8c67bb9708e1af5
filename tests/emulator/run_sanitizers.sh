#!/usr/bin/env bash
# Builds the MSL emulator with ThreadSanitizer, AddressSanitizer and
# UndefinedBehaviorSanitizer and runs a subset of the emulated Metal tests
# under each: a missing barrier (a race on threadgroup memory), an
# out-of-bounds read in a loader, a misaligned vector load or a signed
# overflow is a report, and any report fails this script (non-zero exit).
# The shim's mutant kernels (tests/test_emulator_shim.py) show each
# sanitizer reporting its kind of bug.
# Usage: tests/emulator/run_sanitizers.sh [extra pytest args]
#   VOLCONV_SANITIZERS="thread address,undefined" picks the builds (the
#   default; "address" and "undefined" alone work too). AddressSanitizer and
#   UndefinedBehaviorSanitizer share one build, as in CI's C++ step: one
#   build and one run fewer (about 100 s of CI).
set -euo pipefail
cd "$(dirname "$0")/../.."

CXX=${VOLCONV_EMU_CXX:-$(command -v clang++-19 || command -v clang++)}
# A subset reaching every kernel family, tails, groups, all dtypes; the
# 64-bit test's 6 GiB array is left out (shadow memory for all of it).
SUBSET="parity and (k3_p1 or cout_tail or odd_everything or groups4_odd or depthwise_odd or depthwise_mult2 \
or small_cin_stem or small_cin_2_dilation or small_cin_groups or pointwise_stride_pad or gemm_64x64_ntail \
or gemm_m_tails or asym_pad_stride or stride_gt_kernel) or mma or thread_elements or simd_sum \
or test_emulator_shim"

# Every training kernel family (phase GEMM and depthwise, weight-gradient
# GEMM and depthwise, the reduction over several parts), both index widths.
TRAINING_SUBSET="parity_every_forced_plan and (t_k3s2p1op1 or t_k2s3_zero_phases or gi_depthwise_mult2 \
or gw_groups or gw_depthwise_mult2)"
TRAINING_SUBSET="$TRAINING_SUBSET or (test_parity and float16 and gw_many_parts)"

# Padding modes and the fused epilogue: every forward family and the weight
# gradient with the per-axis mix of modes, every dtype, both index widths
# (the mutant libraries are not built with sanitizers).
EPILOGUE_SUBSET="(test_mode_and_full_epilogue and mixed) or (test_weight_gradient and mixed) or large_index \
or activation_limits"

# conv3d's input gradient under a padding mode: the box phases and the fold,
# every phase family, every dtype, both index widths.
PADDING_GRAD_SUBSET="(test_parity_float32 and mixed) or test_parity_forced_plans"

for sanitizer in ${VOLCONV_SANITIZERS:-thread address,undefined}; do
  build_dir=build/emulator-${sanitizer//,/-}
  echo "=== $sanitizer sanitizer: building $build_dir"
  cmake -S tests/emulator -B "$build_dir" -DCMAKE_CXX_COMPILER="$CXX" -DEMU_SANITIZER="$sanitizer" >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" >/dev/null
  case $sanitizer in
    thread)
      runtime=$("$CXX" -print-file-name=libclang_rt.tsan-x86_64.so)
      export TSAN_OPTIONS="halt_on_error=1 exitcode=66 report_signal_unsafe=0" ;;
    address | address,undefined)
      # The AddressSanitizer runtime carries UndefinedBehaviorSanitizer's
      # handlers when both are built in.
      runtime=$("$CXX" -print-file-name=libclang_rt.asan-x86_64.so)
      # Python itself is not instrumented and keeps memory until exit.
      export ASAN_OPTIONS="halt_on_error=1 exitcode=66 detect_leaks=0"
      export UBSAN_OPTIONS="halt_on_error=1 exitcode=66 print_stacktrace=1" ;;
    undefined)
      runtime=$("$CXX" -print-file-name=libclang_rt.ubsan_standalone-x86_64.so)
      export UBSAN_OPTIONS="halt_on_error=1 exitcode=66 print_stacktrace=1" ;;
    *) echo "unknown sanitizer $sanitizer"; exit 2 ;;
  esac
  [[ -f $runtime ]] || { echo "sanitizer runtime $runtime not found (install libclang-rt-19-dev)"; exit 2; }
  echo "=== $sanitizer sanitizer: running the subset"
  # The runtime must be loaded before Python's allocator is in use.
  LD_PRELOAD=$runtime VOLCONV_EMU_LIB=$build_dir/libmsl_emulator.so VOLCONV_EMU_SANITIZER=$sanitizer \
    python3 -m pytest -q -p no:cacheprovider tests/test_metal_emulated.py tests/test_emulator_shim.py \
    -k "$SUBSET" "$@"
  echo "=== $sanitizer sanitizer: the training kernels"
  LD_PRELOAD=$runtime VOLCONV_EMU_LIB=$build_dir/libmsl_emulator.so VOLCONV_EMU_SANITIZER=$sanitizer \
    python3 -m pytest -q -p no:cacheprovider tests/test_metal_emulated_training.py -k "$TRAINING_SUBSET" "$@"
  echo "=== $sanitizer sanitizer: padding modes and the epilogue"
  LD_PRELOAD=$runtime VOLCONV_EMU_LIB=$build_dir/libmsl_emulator.so VOLCONV_EMU_SANITIZER=$sanitizer \
    python3 -m pytest -q -p no:cacheprovider tests/test_metal_emulated_epilogue.py -k "$EPILOGUE_SUBSET" "$@"
  echo "=== $sanitizer sanitizer: the input gradient's padding fold"
  LD_PRELOAD=$runtime VOLCONV_EMU_LIB=$build_dir/libmsl_emulator.so VOLCONV_EMU_SANITIZER=$sanitizer \
    python3 -m pytest -q -p no:cacheprovider tests/test_metal_emulated_padding_grad.py -k "$PADDING_GRAD_SUBSET" "$@"
done
echo "=== sanitizers: clean"
