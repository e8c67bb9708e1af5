// Depthwise conv3d (groups == C_in, any channel multiplier): per output
// channel a dot product over the taps only, too short for a GEMM. A
// threadgroup takes 32 output channels, stages their weights once in
// threadgroup memory as [taps][32], and each thread accumulates VEC
// channels for PPT output positions, reading VEC channels per tap at once
// when the multiplier is 1 (input channel == output channel).
#include "conv3d_common.h"

using namespace volconv;

template <typename T, int VEC, typename I>
[[kernel, max_total_threads_per_threadgroup(DepthwiseTile::THREADS)]] void conv3d_depthwise(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                 device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                 const device float* bias [[buffer(4)]], const device T* residual [[buffer(5)]],
                                 threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                 uint3 tgid [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint simd_gid [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  constexpr int NT = DepthwiseTile::THREADS;
  constexpr int BC = DepthwiseTile::CHANNELS;
  constexpr int PPT = DepthwiseTile::POSITIONS_PER_THREAD;
  constexpr int TX = BC / VEC;  // threads across channels
  constexpr int TY = NT / TX;   // threads across positions
  constexpr int BP = TY * PPT;  // positions per threadgroup

  const int c0 = int(tgid.y) * BC;
  const int taps = p.taps;
  const int weight_elements = int(depthwise_threadgroup_elements(taps));  // [taps][BC]
  for (int e = int(tid); e < weight_elements; e += NT) {
    const int co = c0 + e % BC;
    T v = T(0.0f);
    if (co < p.c_out) v = weight[I(co) * taps + e / BC];
    smem[e] = v;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);

  const int tx = int(tid) % TX;
  const int ty = int(tid) / TX;
  const int co0 = c0 + tx * VEC;
  if (co0 >= p.c_out) return;  // after the only barrier: no thread waits on it
  // C_in_g == 1: output channel co reads input channel co / multiplier.
  const int ci0 = co0 / p.c_out_g;
  VOLCONV_UNROLL
  for (int pp = 0; pp < PPT; ++pp) {
    const I m = I(tgid.x) * BP + (ty + pp * TY);
    if (m >= I(p.gemm_m)) break;
    const OutPos q = decode_row<I>(m, p);
    const int d0 = q.od * p.stride[0] - p.pad_lo[0];
    const int h0 = q.oh * p.stride[1] - p.pad_lo[1];
    const int w0 = q.ow * p.stride[2] - p.pad_lo[2];
    const I batch_base = I(q.n) * I(p.in_stride_n) + ci0;
    float acc[VEC];
    VOLCONV_UNROLL
    for (int j = 0; j < VEC; ++j) acc[j] = 0.0f;
    // A tap in the padding multiplies a zero rather than being skipped, so a
    // non-finite weight there still makes the output NaN (0 * inf), as on
    // the CPU and in torch and MLX.
    // A padded coordinate reads what its padding mode maps it to
    // (padded_source; -1, a zero, in the zeros mode).
    for (int kd = 0; kd < p.k_size[0]; ++kd) {
      const int id = padded_source(p.pad_mode[0], p.in_size[0], d0 + kd * p.dilation[0]);
      const bool in_d = id >= 0;
      for (int kh = 0; kh < p.k_size[1]; ++kh) {
        const int ih = padded_source(p.pad_mode[1], p.in_size[1], h0 + kh * p.dilation[1]);
        const bool in_dh = in_d && ih >= 0;
        for (int kw = 0; kw < p.k_size[2]; ++kw) {
          const int iw = padded_source(p.pad_mode[2], p.in_size[2], w0 + kw * p.dilation[2]);
          const threadgroup T* w = smem + ((kd * p.k_size[1] + kh) * p.k_size[2] + kw) * BC + tx * VEC;
          if (!(in_dh && iw >= 0)) {
            VOLCONV_UNROLL
            for (int j = 0; j < VEC; ++j) acc[j] = fma(0.0f, float(w[j]), acc[j]);
            continue;
          }
          const device T* src =
              input + (batch_base + I(id) * I(p.in_stride_d) + I(ih) * I(p.in_stride_h) + I(iw) * p.c_in);
          if (VEC == 4) {
            // Multiplier 1 and C % 4 == 0 (planner): 4 aligned channels.
            const vec<T, 4> x4 = *reinterpret_cast<const device vec<T, 4>*>(src);
            VOLCONV_UNROLL
            for (int j = 0; j < VEC; ++j) acc[j] = fma(float(x4[j]), float(w[j]), acc[j]);
          } else {
            acc[0] = fma(float(src[0]), float(w[0]), acc[0]);
          }
        }
      }
    }
    VOLCONV_UNROLL
    for (int j = 0; j < VEC; ++j)
      if (co0 + j < p.c_out) {
        const I index = m * I(p.c_out) + (co0 + j);
        output[index] = T(apply_epilogue(acc[j], p, bias, residual, index, co0 + j));
      }
  }
}

#define VOLCONV_INSTANTIATE_DEPTHWISE(T, VEC, IDX)                                                           \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_DEPTHWISE_KERNEL_NAME(T, VEC, IDX), conv3d_depthwise, T, VEC, VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(depthwise, float)
VOLCONV_DEPTHWISE_KERNELS(VOLCONV_INSTANTIATE_DEPTHWISE, float)
#endif
#if VOLCONV_LIBRARY_HAS(depthwise, half)
VOLCONV_DEPTHWISE_KERNELS(VOLCONV_INSTANTIATE_DEPTHWISE, half)
#endif
#if VOLCONV_LIBRARY_HAS(depthwise, bfloat)
VOLCONV_DEPTHWISE_KERNELS(VOLCONV_INSTANTIATE_DEPTHWISE, bfloat)
#endif
