// expect: an emulator error naming the thread that returned, never a hang.
// Thread 5 returns before the barrier the other 31 wait at (the bug: every
// thread must reach each barrier; the twin returns after it). The divergent
// kernel sends lane 0 to a threadgroup barrier and the others to a simdgroup
// barrier: nobody can pass, and the barrier timeout reports it.
#include "conv3d_common.h"

using namespace volconv;

template <typename T, bool EARLY>
[[kernel]] void shim_return_and_barrier(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                        device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                        threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                        uint3 tgid [[threadgroup_position_in_grid]],
                                        uint tid [[thread_index_in_threadgroup]],
                                        uint simd_gid [[simdgroup_index_in_threadgroup]],
                                        uint lane [[thread_index_in_simdgroup]]) {
  smem[tid] = input[tid];
  if (EARLY && tid == 5) return;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (!EARLY && tid == 5) return;
  output[tid] = smem[(tid + 1) % 32];
}

template <typename T>
[[kernel]] void shim_divergent_barriers(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                        device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                        threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                        uint3 tgid [[threadgroup_position_in_grid]],
                                        uint tid [[thread_index_in_threadgroup]],
                                        uint simd_gid [[simdgroup_index_in_threadgroup]],
                                        uint lane [[thread_index_in_simdgroup]]) {
  if (lane == 0)
    threadgroup_barrier(mem_flags::mem_threadgroup);
  else
    simdgroup_barrier(mem_flags::mem_threadgroup);
  output[tid] = input[tid];
}

VOLCONV_INSTANTIATE_KERNEL("mutant_exit_before_barrier", shim_return_and_barrier, float, true)
VOLCONV_INSTANTIATE_KERNEL("twin_exit_after_barrier", shim_return_and_barrier, float, false)
VOLCONV_INSTANTIATE_KERNEL("mutant_divergent_barriers", shim_divergent_barriers, float)
