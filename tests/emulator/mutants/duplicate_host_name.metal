// expect: the library refuses to load. Two different instantiations under
// one host_name (the bug: a copy-pasted name in an instantiation list); on
// Apple the library does not build, the emulator reports it at load.
#include "conv3d_common.h"

using namespace volconv;

template <typename T>
[[kernel]] void shim_copy(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                          device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                          threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                          uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                          uint simd_gid [[simdgroup_index_in_threadgroup]],
                          uint lane [[thread_index_in_simdgroup]]) {
  output[tid] = input[tid];
}

VOLCONV_INSTANTIATE_KERNEL("shim_copy_float", shim_copy, float)
VOLCONV_INSTANTIATE_KERNEL("shim_copy_float", shim_copy, half)
