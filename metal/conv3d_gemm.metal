// Forward conv3d as an implicit GEMM: C[m, n] = sum_k A[m, k] * B[k, n] with
// m an output position, n an output channel of group g, k = (tap, c_in).
// A is never built: each K-slice of it is gathered from the NDHWC input into
// threadgroup memory, reading zero in the padding. Two threadgroup buffers:
// the next slice is gathered while the simdgroups multiply the current one.
// POINTWISE (1x1x1 kernels): k is the input channel, one address per row.
#include "conv3d_common.h"

namespace volconv {

// Gathers BM x BK slices of A. Each thread owns one VEC-wide chunk column
// (the same k offset in every slice) of up to ROWS rows; the rows' receptive
// field origins are computed once, the thread's (tap, channel) is walked
// forward by BK per slice without divisions. I: the index type.
template <typename T, int BM, int BK, int NT, int VEC, bool POINTWISE, typename I>
struct InputGather {
  VOLCONV_CONST int LDA = gemm_lda(BK, int(sizeof(T)));
  VOLCONV_CONST int CHUNKS = BK / VEC;
  VOLCONV_CONST int ROW_STEP = NT / CHUNKS;
  VOLCONV_CONST int ROWS = (BM + ROW_STEP - 1) / ROW_STEP;
  static_assert(NT % CHUNKS == 0, "threads must cover whole k-rows of the A tile");

  I base[ROWS];        // input offset of (n, d0, h0, w0, group's channel 0); negative
                       // or past the end in the padding, dereferenced only in range
  int d0[ROWS], h0[ROWS], w0[ROWS];
  bool valid[ROWS];    // row inside the tile and m < M (pointwise: also not padding)
  int r0, kc;
  int k, ci, kd, kh, kw;

  void init(const constant Conv3dParams& p, I m0, int g, uint tid) {
    kc = int(tid) % CHUNKS;
    r0 = int(tid) / CHUNKS;
    VOLCONV_UNROLL
    for (int i = 0; i < ROWS; ++i) {
      const int r = r0 + i * ROW_STEP;
      const I m = m0 + r;
      valid[i] = r < BM && m < I(p.gemm_m);
      const OutPos q = decode_row<I>(valid[i] ? m : I(0), p);
      d0[i] = q.od * p.stride[0] - p.pad_lo[0];
      h0[i] = q.oh * p.stride[1] - p.pad_lo[1];
      w0[i] = q.ow * p.stride[2] - p.pad_lo[2];
      if (POINTWISE) {
        // One tap: the row reads the element its padded coordinate maps to,
        // or is zero (padded_source gives -1 for the zeros mode).
        d0[i] = padded_source(p.pad_mode[0], p.in_size[0], d0[i]);
        h0[i] = padded_source(p.pad_mode[1], p.in_size[1], h0[i]);
        w0[i] = padded_source(p.pad_mode[2], p.in_size[2], w0[i]);
        valid[i] = valid[i] && d0[i] >= 0 && h0[i] >= 0 && w0[i] >= 0;
      }
      base[i] = I(q.n) * I(p.in_stride_n) + I(d0[i]) * I(p.in_stride_d) + I(h0[i]) * I(p.in_stride_h) +
                I(w0[i]) * p.c_in + I(g) * p.c_in_g;
    }
    k = kc * VEC;
    ci = POINTWISE ? k : k % p.c_in_g;
    const int tap = POINTWISE ? 0 : k / p.c_in_g;
    kw = tap % p.k_size[2];
    kh = (tap / p.k_size[2]) % p.k_size[1];
    kd = tap / (p.k_size[2] * p.k_size[1]);
  }

  void load(const device T* input, const constant Conv3dParams& p, threadgroup T* a_tile) const {
    const int dd = kd * p.dilation[0], dh = kh * p.dilation[1], dw = kw * p.dilation[2];
    const I tap_offset = I(dd) * I(p.in_stride_d) + I(dh) * I(p.in_stride_h) + I(dw) * p.c_in + ci;
    VOLCONV_UNROLL
    for (int i = 0; i < ROWS; ++i) {
      const int r = r0 + i * ROW_STEP;
      if (r >= BM) break;
      T v[VEC];
      VOLCONV_UNROLL
      for (int j = 0; j < VEC; ++j) v[j] = T(0.0f);
      bool inside = POINTWISE ? valid[i]
                              : valid[i] && in_range(d0[i] + dd, p.in_size[0]) &&
                                    in_range(h0[i] + dh, p.in_size[1]) && in_range(w0[i] + dw, p.in_size[2]);
      I offset = base[i] + tap_offset;
      if (!POINTWISE && !inside && valid[i] && k < p.gemm_k && reads_padding(p)) {
        // A padding mode: move the address to the element the padded
        // coordinate reads, axis by axis (no padded copy of the input).
        const int d = d0[i] + dd, h = h0[i] + dh, w = w0[i] + dw;
        const int sd = padded_source(p.pad_mode[0], p.in_size[0], d);
        const int sh = padded_source(p.pad_mode[1], p.in_size[1], h);
        const int sw = padded_source(p.pad_mode[2], p.in_size[2], w);
        if (sd >= 0 && sh >= 0 && sw >= 0) {
          inside = true;
          offset += I(sd - d) * I(p.in_stride_d) + I(sh - h) * I(p.in_stride_h) + I(sw - w) * p.c_in;
        }
      }
      if (inside && k < p.gemm_k) {
        const device T* src = input + offset;
        if (VEC == 4) {
          // C_in_g % 4 == 0 and C_in % 4 == 0 (planner): 4 channels of one tap, aligned.
          const vec<T, 4> x4 = *reinterpret_cast<const device vec<T, 4>*>(src);
          VOLCONV_UNROLL
          for (int j = 0; j < VEC; ++j) v[j] = x4[j];
        } else {
          v[0] = src[0];
        }
      }
      VOLCONV_UNROLL
      for (int j = 0; j < VEC; ++j) a_tile[r * LDA + kc * VEC + j] = v[j];
    }
  }

  void advance(const constant Conv3dParams& p) {
    k += BK;
    ci += BK;
    if (POINTWISE) return;
    while (ci >= p.c_in_g) {
      ci -= p.c_in_g;
      if (++kw == p.k_size[2]) {
        kw = 0;
        if (++kh == p.k_size[1]) {
          kh = 0;
          ++kd;
        }
      }
    }
  }
};

}  // namespace volconv

// Kernels live at global scope (helpers in namespace volconv), as in MLX.
using namespace volconv;

template <typename T, int BM, int BN, int BK, int WM, int WN, int VEC, bool POINTWISE, typename I>
[[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]] void conv3d_gemm(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                            device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                            const device float* bias [[buffer(4)]], const device T* residual [[buffer(5)]],
                            threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                            uint3 tgid [[threadgroup_position_in_grid]],
                            uint tid [[thread_index_in_threadgroup]],
                            uint simd_gid [[simdgroup_index_in_threadgroup]],
                            uint lane [[thread_index_in_simdgroup]]) {
  constexpr int NT = WM * WN * 32;
  constexpr int ESIZE = int(sizeof(T));
  constexpr int LDA = gemm_lda(BK, ESIZE);
  constexpr int LDB = gemm_ldb(BN, ESIZE);
  constexpr int A_TILE = gemm_a_tile(BM, BK, ESIZE);
  constexpr int B_TILE = gemm_b_tile(BK, BN, ESIZE);
  constexpr int TM = BM / (8 * WM);
  constexpr int TN = BN / (8 * WN);
  static_assert(TM * 8 * WM == BM && TN * 8 * WN == BN && BK % 8 == 0, "tile must split into 8x8 fragments");

  threadgroup T* a_tiles = smem;               // [2][BM][LDA]
  threadgroup T* b_tiles = smem + 2 * A_TILE;  // [2][BK][LDB]

  const I m0 = I(tgid.x) * BM;
  const int n0 = int(tgid.y) * BN;
  const int g = int(tgid.z);

  InputGather<T, BM, BK, NT, VEC, POINTWISE, I> gather;
  gather.init(p, m0, g, tid);

  const int sm_row = int(simd_gid) / WN * (TM * 8);
  const int sn_col = int(simd_gid) % WN * (TN * 8);
  short fr, fc;
  fragment_coord(ushort(lane), fr, fc);
  simdgroup_matrix<float, 8, 8> acc[TM][TN];
  zero_accumulators(acc);

  const int num_slices = (p.gemm_k + BK - 1) / BK;
  gather.load(input, p, a_tiles);
  load_weight_tile<T, BN, BK, NT, VEC, I>(weight, p, g, n0, 0, b_tiles, tid);
  gather.advance(p);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int s = 0; s < num_slices; ++s) {
    // Buffer (s + 1) & 1 was last read in iteration s - 1, before the barrier
    // that ended it, so it can be refilled while buffer s & 1 is multiplied.
    if (s + 1 < num_slices) {
      const int next = (s + 1) & 1;
      gather.load(input, p, a_tiles + next * A_TILE);
      load_weight_tile<T, BN, BK, NT, VEC, I>(weight, p, g, n0, (s + 1) * BK, b_tiles + next * B_TILE, tid);
      gather.advance(p);
    }
    mma_tile<T, TM, TN, BK, LDA, LDB>(acc, a_tiles + (s & 1) * A_TILE, b_tiles + (s & 1) * B_TILE, sm_row,
                                      sn_col, fr, fc);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  VOLCONV_UNROLL
  for (int i = 0; i < TM; ++i) {
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) {
      VOLCONV_UNROLL
      for (int e = 0; e < 2; ++e)
        store_output(output, p, bias, residual, g, m0 + (sm_row + i * 8 + fr), n0 + sn_col + j * 8 + fc + e,
                     acc[i][j].thread_elements()[e]);
    }
  }
}

#define VOLCONV_INSTANTIATE_GEMM(T, BM, BN, BK, WM, WN, VEC, IDX)                                     \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TILE_KERNEL_NAME(gemm, T, BM, BN, BK, WM, WN, VEC, IDX), conv3d_gemm, T, \
                             BM, BN, BK, WM, WN, VEC, false, VOLCONV_INDEX_TYPE(IDX))
#define VOLCONV_INSTANTIATE_POINTWISE(T, BM, BN, BK, WM, WN, VEC, IDX)                                    \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TILE_KERNEL_NAME(pointwise, T, BM, BN, BK, WM, WN, VEC, IDX), conv3d_gemm, \
                             T, BM, BN, BK, WM, WN, VEC, true, VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(gemm, float)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_GEMM, float)
#endif
#if VOLCONV_LIBRARY_HAS(gemm, half)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_GEMM, half)
#endif
#if VOLCONV_LIBRARY_HAS(gemm, bfloat)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_GEMM, bfloat)
#endif
#if VOLCONV_LIBRARY_HAS(pointwise, float)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_POINTWISE, float)
#endif
#if VOLCONV_LIBRARY_HAS(pointwise, half)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_POINTWISE, half)
#endif
#if VOLCONV_LIBRARY_HAS(pointwise, bfloat)
VOLCONV_GEMM_KERNELS(VOLCONV_INSTANTIATE_POINTWISE, bfloat)
#endif
