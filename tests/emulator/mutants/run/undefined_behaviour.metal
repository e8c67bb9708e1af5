// expect: UndefinedBehaviorSanitizer reports. The misaligned kernel reads a
// float4 one element past a 16-byte boundary (the bug: Metal's float4 needs
// 16-byte alignment, as the vectorised loaders assume); the overflow kernel
// forms a 32-bit row offset that passes 2^31 (the bug: such offsets must be
// 64-bit, as in conv3d_params.h). The twins do neither.
#include "conv3d_common.h"

using namespace volconv;

template <typename T, int OFFSET>
[[kernel]] void shim_vector_load(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                 device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                 threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                 uint3 tgid [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint simd_gid [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  if (tid >= 8) return;
  const vec<T, 4> x4 = *reinterpret_cast<const device vec<T, 4>*>(input + OFFSET + 4 * tid);
  output[tid] = x4[0] + x4[1] + x4[2] + x4[3];
}

template <typename T, int ROWS>
[[kernel]] void shim_row_offset(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                uint3 tgid [[threadgroup_position_in_grid]],
                                uint tid [[thread_index_in_threadgroup]],
                                uint simd_gid [[simdgroup_index_in_threadgroup]],
                                uint lane [[thread_index_in_simdgroup]]) {
  // A row index near the 32-bit limit times a row length: the GEMM's m * C_out.
  const int m = ROWS - 32 + int(tid);
  const int row_length = int(input[0]);  // 2.0 in the test: known only at run time
  const int offset = m * row_length;
  output[tid] = T(float(offset % 7));
}

VOLCONV_INSTANTIATE_KERNEL("mutant_misaligned_vector_load", shim_vector_load, float, 1)
VOLCONV_INSTANTIATE_KERNEL("twin_aligned_vector_load", shim_vector_load, float, 0)
VOLCONV_INSTANTIATE_KERNEL("mutant_signed_overflow", shim_row_offset, float, 2147483647)
VOLCONV_INSTANTIATE_KERNEL("twin_no_overflow", shim_row_offset, float, 1024)
