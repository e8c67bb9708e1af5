// Pieces shared by the conv3d kernels: the instantiation macro, Apple's
// simdgroup-matrix lane layout, output-row decoding, the weight (B) loader,
// the tile MMA and the output store. MSL 3.1 (C++14 based: no if constexpr).
#pragma once

#include <metal_stdlib>

#include "conv3d_params.h"

using namespace metal;

// Kernels bind threadgroup memory 0 through this macro rather than spelling
// [[threadgroup(0)]]: the emulator defines `threadgroup` away, which would
// also erase the attribute's name.
#ifndef VOLCONV_THREADGROUP_MEMORY
#define VOLCONV_THREADGROUP_MEMORY(index) [[threadgroup(index)]]
#endif

// The one way kernels are instantiated: Apple's compiler gets a host_name,
// the emulator (which predefines this macro) a registration under that name.
#ifndef VOLCONV_INSTANTIATE_KERNEL
#define VOLCONV_INSTANTIATE_KERNEL(name, func, ...) \
  template [[host_name(name)]] [[kernel]] decltype(func<__VA_ARGS__>) func<__VA_ARGS__>;
#endif

// Fixed-trip loops over fragments and rows: fully unrolled, so that arrays
// indexed by their counters (acc[TM][TN], base[ROWS]) stay in registers.
#define VOLCONV_UNROLL _Pragma("clang loop unroll(full)")

namespace volconv {

// Apple's layout of an 8x8 simdgroup_matrix: lane `lane` holds elements
// (row, col) and (row, col + 1).
inline void fragment_coord(ushort lane, thread short& row, thread short& col) {
  const short qid = short(lane / 4);
  row = short((qid & 4) + ((lane / 2) % 4));
  col = short((qid & 2) * 2 + (lane % 2) * 2);
}

// Output position of GEMM row m, divided in the index type I (int32_t
// unless M can pass 2^31: Apple GPUs emulate 64-bit division in software).
struct OutPos {
  int n, od, oh, ow;
};

template <typename I>
inline OutPos decode_row(I m, const constant Conv3dParams& p) {
  OutPos q;
  const I rows_dhw = I(p.out_rows_dhw), rows_hw = I(p.out_rows_hw);
  const I n = m / rows_dhw;
  I r = m - n * rows_dhw;
  const I od = r / rows_hw;
  r -= od * rows_hw;
  const I oh = r / I(p.out_size[2]);
  q.n = int(n);
  q.od = int(od);
  q.oh = int(oh);
  q.ow = int(r - oh * p.out_size[2]);
  return q;
}

// True when 0 <= i < size: one unsigned compare.
inline bool in_range(int i, int size) { return uint(i) < uint(size); }

// The input index that padded coordinate c reads along an axis of n
// elements under padding mode `mode` (PadModeCode), or -1 for a zero; the
// CPU's padded_source (csrc/cpu/padding_map.h), same rules. Validation
// keeps c within one reflection or wrap of the input, for every coordinate
// a real tap (k < K, m < M) reaches; callers ask for nothing else.
inline int padded_source(int mode, int n, int c) {
  if (in_range(c, n)) return c;
  if (mode == PadModeCode::REFLECT) return c < 0 ? -c : 2 * (n - 1) - c;
  if (mode == PadModeCode::REPLICATE) return c < 0 ? 0 : n - 1;
  if (mode == PadModeCode::CIRCULAR) return c < 0 ? c + n : c - n;
  return -1;
}

// Whether any axis's padding holds input values (not zeros).
inline bool reads_padding(const constant Conv3dParams& p) {
  return (p.pad_mode[0] | p.pad_mode[1] | p.pad_mode[2]) != PadModeCode::ZEROS;
}

// The fused epilogue on one accumulator value, in float32 as on the CPU
// (csrc/cpu/epilogue.cpp: the same order and formulas): + bias, the
// activation, + residual. gelu_tanh as x * sigmoid(2u), one exp, no tanh:
// exp overflowing to inf gives the limit -0, as on the CPU.
inline float activate(float v, int activation) {
  if (activation == ActivationCode::RELU) return v < 0.0f ? 0.0f : v;  // NaN stays NaN
  if (activation == ActivationCode::SILU) return v / (1.0f + exp(-v));
  if (activation == ActivationCode::GELU_TANH) {
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);  // sqrt(2 / pi) (x + 0.044715 x^3)
    return v / (1.0f + exp(-2.0f * u));
  }
  return v;
}

template <typename T, typename I>
inline float apply_epilogue(float v, const constant Conv3dParams& p, const device float* bias,
                            const device T* residual, I out_index, int channel) {
  if (p.has_bias) v += bias[channel];
  if (!p.has_residual) return activate(v, p.activation);
  const float r = float(residual[out_index]);
  return activate(v, p.activation) + r;
}

// Loads the weight slice B[k0 .. k0+BK) x [n0 .. n0+BN) of group g into
// threadgroup memory laid out [BK][BN + pad]. B[k][n] is weight row
// (g*C_out_g + n0 + n), contiguous in k, so each thread reads VEC
// consecutive k of one row; rows past C_out_g and k past K read zero.
template <typename T, int BN, int BK, int NT, int VEC, typename I>
inline void load_weight_tile(const device T* weight, const constant Conv3dParams& p, int g, int n0, int k0,
                             threadgroup T* b_tile, uint tid) {
  constexpr int LDB = gemm_ldb(BN, int(sizeof(T)));
  constexpr int CHUNKS = BK / VEC;  // chunks along k per row
  constexpr int ROW_STEP = NT / CHUNKS;
  static_assert(NT % CHUNKS == 0, "threads must cover whole k-rows of the weight tile");
  const int kc = int(tid) % CHUNKS;
  const int k = k0 + kc * VEC;
  for (int n = int(tid) / CHUNKS; n < BN; n += ROW_STEP) {
    const int co = n0 + n;
    T v[VEC];
    VOLCONV_UNROLL
    for (int j = 0; j < VEC; ++j) v[j] = T(0.0f);
    if (co < p.c_out_g && k < p.gemm_k) {
      const device T* src = weight + ((I(g) * p.c_out_g + co) * I(p.gemm_k) + k);
      if (VEC == 4) {
        // K % 4 == 0 (planner), so the 4 values are in range and aligned.
        const vec<T, 4> w4 = *reinterpret_cast<const device vec<T, 4>*>(src);
        VOLCONV_UNROLL
        for (int j = 0; j < VEC; ++j) v[j] = w4[j];
      } else {
        v[0] = src[0];
      }
    }
    VOLCONV_UNROLL
    for (int j = 0; j < VEC; ++j) b_tile[(kc * VEC + j) * LDB + n] = v[j];
  }
}

// Loads the two elements of this lane's fragment at (row, col) of a
// row-major threadgroup tile, converting to the float accumulator type.
// Why convert element-wise instead of multiplying half/bfloat fragments into
// a float accumulator: the MSL 3.1 specification (its SIMD-group
// matrix functions) declares simdgroup_multiply_accumulate with one element
// type T for d, a, b and c. Public notes quoting a newer toolchain's
// metal_simdgroup_matrix header (metalfe-32023.864) show a template with
// independent element types, but nothing ties it to the macOS 14 / MSL 3.1
// baseline and it has not been compiled here; MLX's steel kernels convert too.
template <typename T>
inline void load_fragment(thread simdgroup_matrix<float, 8, 8>& f, const threadgroup T* tile, int ld, int row,
                          int col) {
  const threadgroup T* src = tile + row * ld + col;
  f.thread_elements()[0] = float(src[0]);
  f.thread_elements()[1] = float(src[1]);
}

// acc[TM][TN] += A(rows of this simdgroup, BK) * B(BK, cols of this simdgroup),
// A read from a [BM][BK + pad] tile, B from a [BK][BN + pad] tile.
template <typename T, int TM, int TN, int BK, int LDA, int LDB>
inline void mma_tile(thread simdgroup_matrix<float, 8, 8> (&acc)[TM][TN], const threadgroup T* a_tile,
                     const threadgroup T* b_tile, int sm_row, int sn_col, short fr, short fc) {
  VOLCONV_UNROLL
  for (int k8 = 0; k8 < BK; k8 += 8) {
    simdgroup_matrix<float, 8, 8> a[TM];
    simdgroup_matrix<float, 8, 8> b[TN];
    VOLCONV_UNROLL
    for (int i = 0; i < TM; ++i) load_fragment(a[i], a_tile, LDA, sm_row + i * 8 + fr, k8 + fc);
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) load_fragment(b[j], b_tile, LDB, k8 + fr, sn_col + j * 8 + fc);
    VOLCONV_UNROLL
    for (int i = 0; i < TM; ++i) {
      VOLCONV_UNROLL
      for (int j = 0; j < TN; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
  }
}

template <int TM, int TN>
inline void zero_accumulators(thread simdgroup_matrix<float, 8, 8> (&acc)[TM][TN]) {
  VOLCONV_UNROLL
  for (int i = 0; i < TM; ++i) {
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }
}

// Writes accumulator element (m, n) of group g to output row m (contiguous
// NDHWC output: row m has C_out elements) through the epilogue, skipping M
// and N tails.
template <typename T, typename I>
inline void store_output(device T* output, const constant Conv3dParams& p, const device float* bias,
                         const device T* residual, int g, I m, int n, float value) {
  if (m < I(p.gemm_m) && n < p.c_out_g) {
    const int channel = g * p.c_out_g + n;
    const I index = m * I(p.c_out) + I(channel);
    output[index] = T(apply_epilogue(value, p, bias, residual, index, channel));
  }
}

}  // namespace volconv
