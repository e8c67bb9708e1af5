// expect: NaN output. The accumulator is default-constructed and never
// filled (the bug: no make_filled_simdgroup_matrix / zero_accumulators); a
// GPU gives garbage, the shim NaN. The twin fills it with zeros.
#include "conv3d_common.h"

using namespace volconv;

template <typename T, bool FILL>
[[kernel]] void shim_mma_accumulator(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                     device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                     threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                     uint3 tgid [[threadgroup_position_in_grid]],
                                     uint tid [[thread_index_in_threadgroup]],
                                     uint simd_gid [[simdgroup_index_in_threadgroup]],
                                     uint lane [[thread_index_in_simdgroup]]) {
  short r, c;
  fragment_coord(ushort(lane), r, c);
  simdgroup_matrix<float, 8, 8> a, b;
  simdgroup_matrix<float, 8, 8> acc;
  if (FILL) acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int e = 0; e < 2; ++e) {
    a.thread_elements()[e] = float(input[r * 8 + c + e]);
    b.thread_elements()[e] = float(weight[r * 8 + c + e]);
  }
  simdgroup_multiply_accumulate(acc, a, b, acc);
  for (int e = 0; e < 2; ++e) output[r * 8 + c + e] = T(acc.thread_elements()[e]);
}

VOLCONV_INSTANTIATE_KERNEL("mutant_unfilled_accumulator", shim_mma_accumulator, float, false)
VOLCONV_INSTANTIATE_KERNEL("twin_filled_accumulator", shim_mma_accumulator, float, true)
