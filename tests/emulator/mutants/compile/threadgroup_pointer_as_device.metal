// expect address_spaces: no matching function for call to 'load_weight_tile'
// compiles in: run
// The weight tile is loaded from threadgroup memory where the loader takes
// the device weight buffer (the bug: smem passed for `weight`).
#include "conv3d_common.h"

using namespace volconv;

template <typename T>
[[kernel]] void shim_wrong_space(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                 device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                 threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                 uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                                 uint simd_gid [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  load_weight_tile<T, 32, 16, 128, 1, int32_t>(smem, p, 0, 0, 0, smem, tid);
}

VOLCONV_INSTANTIATE_KERNEL("shim_wrong_space", shim_wrong_space, float)
