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

namespace volconv {

// Padding of threadgroup rows, in elements (16 bytes): consecutive rows then
// start in different banks.
template <typename T>
struct TilePad {
  VOLCONV_CONST int value = 16 / int(sizeof(T));
};

// Apple's layout of an 8x8 simdgroup_matrix: lane `lane` holds elements
// (row, col) and (row, col + 1).
inline void fragment_coord(ushort lane, thread short& row, thread short& col) {
  const short qid = short(lane / 4);
  row = short((qid & 4) + ((lane / 2) % 4));
  col = short((qid & 2) * 2 + (lane % 2) * 2);
}

// Output position of GEMM row m (64-bit: M can pass 2^31).
struct OutPos {
  int n, od, oh, ow;
};

inline OutPos decode_row(int64_t m, const constant Conv3dParams& p) {
  OutPos q;
  const int64_t n = m / p.out_rows_dhw;
  int64_t r = m - n * p.out_rows_dhw;
  const int64_t od = r / p.out_rows_hw;
  r -= od * p.out_rows_hw;
  const int64_t oh = r / p.out_size[2];
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
template <typename T, int BN, int BK, int NT, int VEC>
inline void load_weight_tile(const device T* weight, const constant Conv3dParams& p, int g, int n0, int k0,
                             threadgroup T* b_tile, uint tid) {
  constexpr int LDB = BN + TilePad<T>::value;
  constexpr int CHUNKS = BK / VEC;  // chunks along k per row
  constexpr int ROW_STEP = NT / CHUNKS;
  static_assert(NT % CHUNKS == 0, "threads must cover whole k-rows of the weight tile");
  const int kc = int(tid) % CHUNKS;
  const int k = k0 + kc * VEC;
  for (int n = int(tid) / CHUNKS; n < BN; n += ROW_STEP) {
    const int co = n0 + n;
    T v[VEC];
    for (int j = 0; j < VEC; ++j) v[j] = T(0.0f);
    if (co < p.c_out_g && k < p.gemm_k) {
      const device T* src = weight + (int64_t(g) * p.c_out_g + co) * int64_t(p.gemm_k) + k;
      if (VEC == 4) {
        // K % 4 == 0 (planner), so the 4 values are in range and aligned.
        const vec<T, 4> w4 = *reinterpret_cast<const device vec<T, 4>*>(src);
        for (int j = 0; j < VEC; ++j) v[j] = w4[j];
      } else {
        v[0] = src[0];
      }
    }
    for (int j = 0; j < VEC; ++j) b_tile[(kc * VEC + j) * LDB + n] = v[j];
  }
}

// Loads the two elements of this lane's fragment at (row, col) of a
// row-major threadgroup tile, converting to the float accumulator type.
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
  for (int k8 = 0; k8 < BK; k8 += 8) {
    simdgroup_matrix<float, 8, 8> a[TM];
    simdgroup_matrix<float, 8, 8> b[TN];
    for (int i = 0; i < TM; ++i) load_fragment(a[i], a_tile, LDA, sm_row + i * 8 + fr, k8 + fc);
    for (int j = 0; j < TN; ++j) load_fragment(b[j], b_tile, LDB, k8 + fr, sn_col + j * 8 + fc);
    for (int i = 0; i < TM; ++i)
      for (int j = 0; j < TN; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
  }
}

template <int TM, int TN>
inline void zero_accumulators(thread simdgroup_matrix<float, 8, 8> (&acc)[TM][TN]) {
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
}

// Writes accumulator element (m, n) of group g to output row m (contiguous
// NDHWC output: row m has C_out elements), skipping M and N tails.
template <typename T>
inline void store_output(device T* output, const constant Conv3dParams& p, int g, int64_t m, int n, float value) {
  if (m < p.gemm_m && n < p.c_out_g) output[m * int64_t(p.c_out) + int64_t(g) * p.c_out_g + n] = T(value);
}

}  // namespace volconv
