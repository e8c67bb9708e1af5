// expect address_spaces: (no matching function for call to 'decode_row'|cannot bind|drops address space)
// compiles in: run
// The parameters copied into a thread-space struct and handed to a helper
// that takes them in the constant address space (the bug: decode_row needs
// the `constant` reference the host bound).
#include "conv3d_common.h"

using namespace volconv;

[[kernel]] void shim_params_copy(const device float* input [[buffer(0)]], const device float* weight [[buffer(1)]],
                                 device float* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                 threadgroup float* smem VOLCONV_THREADGROUP_MEMORY(0),
                                 uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                                 uint simd_gid [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  Conv3dParams local;
  local.gemm_m = p.gemm_m;
  const OutPos q = decode_row(int64_t(tid), local);
  output[tid] = float(q.ow);
}
