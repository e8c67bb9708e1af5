// Self-test kernels for the emulator's simdgroup_matrix model. One simdgroup
// (32 threads); input and weight are 8x8 row-major float matrices.
#include "conv3d_common.h"

using namespace volconv;

// Writes, for each lane, the two elements simdgroup_load gave it:
// output[2 * lane + e] = thread_elements()[e].
template <typename T>
[[kernel]] void emu_probe_thread_elements(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                          device T* output [[buffer(2)]],
                                          const constant Conv3dParams& p [[buffer(3)]],
                                          threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                          uint3 tgid [[threadgroup_position_in_grid]],
                                          uint tid [[thread_index_in_threadgroup]],
                                          uint simd_gid [[simdgroup_index_in_threadgroup]],
                                          uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_matrix<T, 8, 8> m;
  simdgroup_load(m, input, 8);
  output[2 * lane] = m.thread_elements()[0];
  output[2 * lane + 1] = m.thread_elements()[1];
}

// output = input x weight, with the fragments filled and read the way the
// conv kernels do it: through thread_elements() at fragment_coord (Apple's
// layout as the kernels assume it).
template <typename T>
[[kernel]] void emu_probe_fragment_mma(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                       device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                       threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                       uint3 tgid [[threadgroup_position_in_grid]],
                                       uint tid [[thread_index_in_threadgroup]],
                                       uint simd_gid [[simdgroup_index_in_threadgroup]],
                                       uint lane [[thread_index_in_simdgroup]]) {
  short r, c;
  fragment_coord(ushort(lane), r, c);
  simdgroup_matrix<float, 8, 8> a, b;
  simdgroup_matrix<float, 8, 8> acc = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (int e = 0; e < 2; ++e) {
    a.thread_elements()[e] = float(input[r * 8 + c + e]);
    b.thread_elements()[e] = float(weight[r * 8 + c + e]);
  }
  simdgroup_multiply_accumulate(acc, a, b, acc);
  for (int e = 0; e < 2; ++e) output[r * 8 + c + e] = T(acc.thread_elements()[e]);
}

// output = input x weight through simdgroup_load / simdgroup_store, which
// need no knowledge of the layout.
template <typename T>
[[kernel]] void emu_probe_load_store_mma(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                         device T* output [[buffer(2)]],
                                         const constant Conv3dParams& p [[buffer(3)]],
                                         threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                         uint3 tgid [[threadgroup_position_in_grid]],
                                         uint tid [[thread_index_in_threadgroup]],
                                         uint simd_gid [[simdgroup_index_in_threadgroup]],
                                         uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_matrix<T, 8, 8> a, b, d;
  simdgroup_load(a, input, 8);
  simdgroup_load(b, weight, 8);
  simdgroup_multiply(d, a, b);
  simdgroup_store(d, output, 8);
}

// output[lane] = sum over lanes of input[lane], then input[(lane + 1) % 32]
// shuffled in: output[32 + lane] = input[(lane + 1) % 32].
template <typename T>
[[kernel]] void emu_probe_simd_ops(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                   device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                   threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                   uint3 tgid [[threadgroup_position_in_grid]],
                                   uint tid [[thread_index_in_threadgroup]],
                                   uint simd_gid [[simdgroup_index_in_threadgroup]],
                                   uint lane [[thread_index_in_simdgroup]]) {
  const T x = input[lane];
  output[lane] = simd_sum(x);
  output[32 + lane] = simd_shuffle(x, ushort((lane + 1) % 32));
}

VOLCONV_INSTANTIATE_KERNEL("emu_probe_thread_elements", emu_probe_thread_elements, float)
VOLCONV_INSTANTIATE_KERNEL("emu_probe_fragment_mma", emu_probe_fragment_mma, float)
VOLCONV_INSTANTIATE_KERNEL("emu_probe_load_store_mma", emu_probe_load_store_mma, float)
VOLCONV_INSTANTIATE_KERNEL("emu_probe_simd_ops", emu_probe_simd_ops, float)
