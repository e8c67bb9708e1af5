// expect address_spaces: cannot initialize a variable of type '(const )?threadgroup float \*' with an (l|r)value of type '(const )?device float \*'
// compiles in: run
// A device pointer kept in a threadgroup pointer variable (the bug: the
// tile base taken from the output buffer instead of threadgroup memory).
#include "conv3d_common.h"

using namespace volconv;

[[kernel]] void shim_tile_from_device(const device float* input [[buffer(0)]], const device float* weight [[buffer(1)]],
                                      device float* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                      threadgroup float* smem VOLCONV_THREADGROUP_MEMORY(0),
                                      uint3 tgid [[threadgroup_position_in_grid]],
                                      uint tid [[thread_index_in_threadgroup]],
                                      uint simd_gid [[simdgroup_index_in_threadgroup]],
                                      uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float* tile = output + tid;
  tile[0] = input[tid];
}
