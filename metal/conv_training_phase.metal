// Data problems with input dilation (conv_transpose3d, conv3d's input
// gradient, conv_general), one dispatch per stride phase: the outputs
// out_first + out_step * q of a phase read only the taps that land on real
// input elements, at fixed input steps (ConvTrainParams), so each phase is a
// dense implicit GEMM and no inserted zero is multiplied. The stored weight
// is read in place through the phase's tap map (flip, and the
// (C_in, K..., C_out / groups) layout of an input gradient): no sub-kernel
// copy. A phase whose taps all miss the input (phase_k == 0) writes zeros.
#include "conv3d_common.h"
#include "conv_training_params.h"

namespace volconv {

// Output row m of a phase: batch and phase-local position q.
struct PhaseRow {
  int n, q0, q1, q2;
};

template <typename I>
inline PhaseRow decode_phase_row(I m, const constant ConvTrainParams& p) {
  PhaseRow r;
  const I rows_dhw = I(p.rows_dhw), rows_hw = I(p.rows_hw);
  const I n = m / rows_dhw;
  I rest = m - n * rows_dhw;
  const I q0 = rest / rows_hw;
  rest -= q0 * rows_hw;
  const I q1 = rest / I(p.row_count[2]);
  r.n = int(n);
  r.q0 = int(q0);
  r.q1 = int(q1);
  r.q2 = int(rest - q1 * p.row_count[2]);
  return r;
}

// The output offset of phase row m, channel 0 (contiguous NDHWC output).
template <typename I>
inline I phase_output_offset(I m, const constant ConvTrainParams& p) {
  const PhaseRow r = decode_phase_row<I>(m, p);
  return I(r.n) * I(p.out_stride_n) + I(p.out_first[0] + p.out_step[0] * r.q0) * I(p.out_stride_d) +
         I(p.out_first[1] + p.out_step[1] * r.q1) * I(p.out_stride_h) +
         I(p.out_first[2] + p.out_step[2] * r.q2) * I(p.c_out);
}

// A phase tap t (flattened over phase_taps) and the stored tap it reads.
struct PhaseTap {
  int t0, t1, t2, stored;
};

inline PhaseTap phase_tap(int t, const constant ConvTrainParams& p) {
  PhaseTap s;
  s.t2 = t % p.phase_taps[2];
  s.t1 = (t / p.phase_taps[2]) % p.phase_taps[1];
  s.t0 = t / (p.phase_taps[2] * p.phase_taps[1]);
  const int t3[3] = {s.t0, s.t1, s.t2};
  int stored = 0;
  VOLCONV_UNROLL
  for (int i = 0; i < 3; ++i) {
    const int k = p.tap0[i] + p.tap_step[i] * t3[i];
    stored = stored * p.k_size[i] + (p.flip ? p.k_size[i] - 1 - k : k);
  }
  s.stored = stored;
  return s;
}

// The stored weight's offset of logical weight (group g, output channel co of
// the group, stored tap, input channel ci of the group).
template <typename I>
inline I phase_weight_offset(const constant ConvTrainParams& p, int g, int co, int stored, int ci) {
  if (p.weight_in_k_out)
    return (I(g) * p.c_in_g + ci) * (I(p.taps) * p.c_out_g) + I(stored) * p.c_out_g + co;
  return (I(g) * p.c_out_g + co) * (I(p.taps) * p.c_in_g) + I(stored) * p.c_in_g + ci;
}

// Gathers BM x BK slices of a phase's A: row r of the tile is phase row
// m0 + r, column kc is k = (phase tap, input channel). Each thread owns one
// column and up to ROWS rows, whose window origins it computes once.
template <typename T, int BM, int BK, int NT, typename I>
struct PhaseGather {
  VOLCONV_CONST int LDA = gemm_lda(BK, int(sizeof(T)));
  VOLCONV_CONST int ROW_STEP = NT / BK;
  VOLCONV_CONST int ROWS = (BM + ROW_STEP - 1) / ROW_STEP;
  static_assert(NT % BK == 0, "threads must cover whole k-rows of the A tile");

  I base[ROWS];  // offset of (n, origin, group's channel 0); dereferenced only inside the input
  int org0[ROWS], org1[ROWS], org2[ROWS];
  bool valid[ROWS];
  int r0, kc;

  void init(const constant ConvTrainParams& p, I m0, int g, uint tid) {
    kc = int(tid) % BK;
    r0 = int(tid) / BK;
    VOLCONV_UNROLL
    for (int i = 0; i < ROWS; ++i) {
      const int r = r0 + i * ROW_STEP;
      const I m = m0 + r;
      valid[i] = r < BM && m < I(p.gemm_m);
      const PhaseRow q = decode_phase_row<I>(valid[i] ? m : I(0), p);
      org0[i] = p.in_base[0] + q.q0 * p.in_step[0];
      org1[i] = p.in_base[1] + q.q1 * p.in_step[1];
      org2[i] = p.in_base[2] + q.q2 * p.in_step[2];
      base[i] = I(q.n) * I(p.in_stride_n) + I(org0[i]) * I(p.in_stride_d) + I(org1[i]) * I(p.in_stride_h) +
                I(org2[i]) * p.c_in + I(g) * p.c_in_g;
    }
  }

  void load(const device T* input, const constant ConvTrainParams& p, int k0, threadgroup T* a_tile) const {
    const int k = k0 + kc;
    const bool real_k = k < p.phase_k;
    const int t = real_k ? k / p.c_in_g : 0;
    const int ci = k - t * p.c_in_g;
    const PhaseTap tap = phase_tap(t, p);
    const int dd = tap.t0 * p.tap_in_step[0], dh = tap.t1 * p.tap_in_step[1], dw = tap.t2 * p.tap_in_step[2];
    const I tap_offset = I(dd) * I(p.in_stride_d) + I(dh) * I(p.in_stride_h) + I(dw) * p.c_in + ci;
    VOLCONV_UNROLL
    for (int i = 0; i < ROWS; ++i) {
      const int r = r0 + i * ROW_STEP;
      if (r >= BM) break;
      T v = T(0.0f);
      if (real_k && valid[i] && in_range(org0[i] + dd, p.in_size[0]) && in_range(org1[i] + dh, p.in_size[1]) &&
          in_range(org2[i] + dw, p.in_size[2]))
        v = input[base[i] + tap_offset];
      a_tile[r * LDA + kc] = v;
    }
  }
};

// Loads the BK x BN slice of a phase's B (its sub-kernel, read in place):
// B[k][n] = logical weight (output channel n0 + n of group g, tap of k,
// input channel of k), zero past C_out_g and phase_k.
template <typename T, int BN, int BK, int NT, typename I>
inline void load_phase_weight(const device T* weight, const constant ConvTrainParams& p, int g, int n0, int k0,
                              threadgroup T* b_tile, uint tid) {
  constexpr int LDB = gemm_ldb(BN, int(sizeof(T)));
  constexpr int ROW_STEP = NT / BK;
  static_assert(NT % BK == 0, "threads must cover whole k-rows of the weight tile");
  const int kc = int(tid) % BK;
  const int k = k0 + kc;
  const bool real_k = k < p.phase_k;
  const int t = real_k ? k / p.c_in_g : 0;
  const int ci = k - t * p.c_in_g;
  const int stored = phase_tap(t, p).stored;
  for (int n = int(tid) / BK; n < BN; n += ROW_STEP) {
    const int co = n0 + n;
    T v = T(0.0f);
    if (real_k && co < p.c_out_g) v = weight[phase_weight_offset<I>(p, g, co, stored, ci)];
    b_tile[kc * LDB + n] = v;
  }
}

}  // namespace volconv

using namespace volconv;

template <typename T, int BM, int BN, int BK, int WM, int WN, typename I>
[[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]] void convtrain_phase_gemm(
    const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]], device T* output [[buffer(2)]],
    const constant ConvTrainParams& p [[buffer(3)]], threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
    uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint simd_gid [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
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

  PhaseGather<T, BM, BK, NT, I> gather;
  gather.init(p, m0, g, tid);

  const int sm_row = int(simd_gid) / WN * (TM * 8);
  const int sn_col = int(simd_gid) % WN * (TN * 8);
  short fr, fc;
  fragment_coord(ushort(lane), fr, fc);
  simdgroup_matrix<float, 8, 8> acc[TM][TN];
  zero_accumulators(acc);

  const int num_slices = (p.phase_k + BK - 1) / BK;
  gather.load(input, p, 0, a_tiles);
  load_phase_weight<T, BN, BK, NT, I>(weight, p, g, n0, 0, b_tiles, tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int s = 0; s < num_slices; ++s) {
    // Buffer (s + 1) & 1 was last read in iteration s - 1, before the barrier
    // that ended it, so it can be refilled while buffer s & 1 is multiplied.
    if (s + 1 < num_slices) {
      const int next = (s + 1) & 1;
      gather.load(input, p, (s + 1) * BK, a_tiles + next * A_TILE);
      load_phase_weight<T, BN, BK, NT, I>(weight, p, g, n0, (s + 1) * BK, b_tiles + next * B_TILE, tid);
    }
    mma_tile<T, TM, TN, BK, LDA, LDB>(acc, a_tiles + (s & 1) * A_TILE, b_tiles + (s & 1) * B_TILE, sm_row,
                                      sn_col, fr, fc);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  VOLCONV_UNROLL
  for (int i = 0; i < TM; ++i) {
    const I m = m0 + (sm_row + i * 8 + fr);
    if (m >= I(p.gemm_m)) continue;
    const I row = phase_output_offset<I>(m, p) + I(g) * p.c_out_g;
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) {
      VOLCONV_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int n = n0 + sn_col + j * 8 + fc + e;
        if (n < p.c_out_g) output[row + n] = T(acc[i][j].thread_elements()[e]);
      }
    }
  }
}

// Depthwise phases (one output channel per group, few input channels per
// group): too little work per output for a GEMM. Each thread computes one
// output channel for ROWS_PER_THREAD phase rows, reading the weight in place.
template <typename T, typename I>
[[kernel, max_total_threads_per_threadgroup(TrainingTile::THREADS)]] void convtrain_phase_depthwise(
    const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]], device T* output [[buffer(2)]],
    const constant ConvTrainParams& p [[buffer(3)]], threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
    uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint simd_gid [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  constexpr int BC = TrainingTile::CHANNELS;
  constexpr int TY = TrainingTile::THREADS / BC;
  constexpr int RPT = TrainingTile::ROWS_PER_THREAD;
  const int co = int(tgid.y) * BC + int(tid) % BC;
  if (co >= p.c_out) return;  // no barrier in this kernel
  const int g = co / p.c_out_g;
  const int o = co - g * p.c_out_g;
  const int taps = p.phase_k / p.c_in_g;  // 0 for a phase of zeros
  VOLCONV_UNROLL
  for (int j = 0; j < RPT; ++j) {
    const I m = I(tgid.x) * (TY * RPT) + (int(tid) / BC + j * TY);
    if (m >= I(p.gemm_m)) break;
    const PhaseRow q = decode_phase_row<I>(m, p);
    const int org0 = p.in_base[0] + q.q0 * p.in_step[0];
    const int org1 = p.in_base[1] + q.q1 * p.in_step[1];
    const int org2 = p.in_base[2] + q.q2 * p.in_step[2];
    const I batch_base = I(q.n) * I(p.in_stride_n) + I(g) * p.c_in_g;
    float acc = 0.0f;
    for (int t = 0; t < taps; ++t) {
      const PhaseTap tap = phase_tap(t, p);
      const int i0 = org0 + tap.t0 * p.tap_in_step[0];
      const int i1 = org1 + tap.t1 * p.tap_in_step[1];
      const int i2 = org2 + tap.t2 * p.tap_in_step[2];
      const bool inside = in_range(i0, p.in_size[0]) && in_range(i1, p.in_size[1]) && in_range(i2, p.in_size[2]);
      const I src = batch_base + I(i0) * I(p.in_stride_d) + I(i1) * I(p.in_stride_h) + I(i2) * p.c_in;
      for (int ci = 0; ci < p.c_in_g; ++ci) {
        const float w = float(weight[phase_weight_offset<I>(p, g, o, tap.stored, ci)]);
        // Padding multiplies a zero (a non-finite weight still gives NaN, as
        // the forward depthwise kernel and the CPU do).
        acc = fma(inside ? float(input[src + ci]) : 0.0f, w, acc);
      }
    }
    output[phase_output_offset<I>(m, p) + co] = T(acc);
  }
}

#define VOLCONV_INSTANTIATE_PHASE_GEMM(T, BM, BN, BK, WM, WN, IDX)                                             \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_TILE_KERNEL_NAME(phase_gemm, T, BM, BN, BK, WM, WN, IDX),        \
                             convtrain_phase_gemm, T, BM, BN, BK, WM, WN, VOLCONV_INDEX_TYPE(IDX))
#define VOLCONV_INSTANTIATE_PHASE_DEPTHWISE(T, IDX)                                                          \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_KERNEL_NAME(phase_depthwise, T, IDX), convtrain_phase_depthwise, \
                             T, VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(phase_gemm, float)
VOLCONV_PHASE_GEMM_KERNELS(VOLCONV_INSTANTIATE_PHASE_GEMM, float)
#endif
#if VOLCONV_LIBRARY_HAS(phase_gemm, half)
VOLCONV_PHASE_GEMM_KERNELS(VOLCONV_INSTANTIATE_PHASE_GEMM, half)
#endif
#if VOLCONV_LIBRARY_HAS(phase_gemm, bfloat)
VOLCONV_PHASE_GEMM_KERNELS(VOLCONV_INSTANTIATE_PHASE_GEMM, bfloat)
#endif
#if VOLCONV_LIBRARY_HAS(phase_depthwise, float)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PHASE_DEPTHWISE, float)
#endif
#if VOLCONV_LIBRARY_HAS(phase_depthwise, half)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PHASE_DEPTHWISE, half)
#endif
#if VOLCONV_LIBRARY_HAS(phase_depthwise, bfloat)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PHASE_DEPTHWISE, bfloat)
#endif
