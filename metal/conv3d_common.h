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
// NDHWC output: row m has C_out elements), skipping M and N tails.
template <typename T, typename I>
inline void store_output(device T* output, const constant Conv3dParams& p, int g, I m, int n, float value) {
  if (m < I(p.gemm_m) && n < p.c_out_g) output[m * I(p.c_out) + I(g) * p.c_out_g + n] = T(value);
}

}  // namespace volconv
