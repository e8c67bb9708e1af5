// expect: a ThreadSanitizer data race. Each thread writes its threadgroup
// slot and reads its neighbour's across a barrier with mem_none, which
// synchronises execution but orders no memory (the bug: it must be
// mem_threadgroup, as in the twin). Run with 32 threads, 128 bytes.
#include "conv3d_common.h"

using namespace volconv;

template <typename T, bool ORDERED>
[[kernel]] void shim_neighbour_exchange(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                        device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                        threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                        uint3 tgid [[threadgroup_position_in_grid]],
                                        uint tid [[thread_index_in_threadgroup]],
                                        uint simd_gid [[simdgroup_index_in_threadgroup]],
                                        uint lane [[thread_index_in_simdgroup]]) {
  smem[tid] = input[tid];
  threadgroup_barrier(ORDERED ? mem_flags::mem_threadgroup : mem_flags::mem_none);
  output[tid] = smem[(tid + 1) % 32];
}

VOLCONV_INSTANTIATE_KERNEL("mutant_barrier_mem_none", shim_neighbour_exchange, float, false)
VOLCONV_INSTANTIATE_KERNEL("twin_barrier_mem_threadgroup", shim_neighbour_exchange, float, true)
