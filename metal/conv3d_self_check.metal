// The self-check the Metal host runs once per device before the first conv
// (and the emulator runs in the tests): does this GPU place simdgroup_matrix
// elements where fragment_coord (conv3d_common.h) says, the layout every
// conv kernel relies on when it fills and reads fragments element-wise?
// One simdgroup; input and weight are 8x8 row-major float matrices. Output
// (csrc/metal/portable/self_check.h checks it):
//   [0, 64):    lane l's two elements after simdgroup_load of input, at 2l, 2l+1;
//   [64, 128):  fragment_coord's (row, col) for lane l, at 64 + 2l, 64 + 2l + 1;
//   [128, 192): input x weight, with fragments filled and read through
//               thread_elements() at fragment_coord, as the kernels do.
#include "conv3d_common.h"

using namespace volconv;

template <typename T>
[[kernel, max_total_threads_per_threadgroup(32)]] void volconv_self_check(
    const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]], device T* output [[buffer(2)]],
    const constant Conv3dParams& p [[buffer(3)]], threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
    uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint simd_gid [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_matrix<T, 8, 8> loaded;
  simdgroup_load(loaded, input, 8);
  output[2 * lane] = loaded.thread_elements()[0];
  output[2 * lane + 1] = loaded.thread_elements()[1];

  short r, c;
  fragment_coord(ushort(lane), r, c);
  output[64 + 2 * lane] = T(float(r));
  output[64 + 2 * lane + 1] = T(float(c));

  simdgroup_matrix<float, 8, 8> a, b;
  simdgroup_matrix<float, 8, 8> acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int e = 0; e < 2; ++e) {
    a.thread_elements()[e] = float(input[r * 8 + c + e]);
    b.thread_elements()[e] = float(weight[r * 8 + c + e]);
  }
  simdgroup_multiply_accumulate(acc, a, b, acc);
  for (int e = 0; e < 2; ++e) output[128 + r * 8 + c + e] = T(acc.thread_elements()[e]);
}

#if VOLCONV_LIBRARY_HAS(self_check, float)
VOLCONV_INSTANTIATE_KERNEL("volconv_self_check", volconv_self_check, float)
#endif
