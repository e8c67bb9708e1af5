// Self-test kernels for the emulator's own simdgroup model (the lane-layout
// self-check the host runs is metal/conv3d_self_check.metal). One simdgroup
// (32 threads); input and weight are 8x8 row-major float matrices.
#include "conv3d_common.h"

using namespace volconv;

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

VOLCONV_INSTANTIATE_KERNEL("emu_probe_load_store_mma", emu_probe_load_store_mma, float)
VOLCONV_INSTANTIATE_KERNEL("emu_probe_simd_ops", emu_probe_simd_ops, float)
