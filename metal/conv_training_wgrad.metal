// The weight gradient of a general convolution, as a GEMM per group whose K
// is the output positions: dW[co, tap, ci] = sum_m dY[m, co] * X[m shifted by
// tap, ci]. K is split into `parts` fixed ranges of part_len positions (a
// function of the problem, not of the grid or tile): each range's sum goes to
// its own float32 partial buffer, and convtrain_wgrad_reduce adds the parts
// in order. Each partial element is one threadgroup's sum over its range in
// a fixed order, so the result does not depend on the tile or the grid.
#include "conv3d_common.h"
#include "conv_training_params.h"

namespace volconv {

// The input offset output position m reads for logical tap (k0, k1, k2) and
// channel `channel` of the input; false when that lands in zero padding or on
// an inserted zero of input dilation (nothing to read). A padding mode reads
// the element the forward pass read there (padded_source; input dilation 1,
// which validation requires for modes).
template <typename I>
inline bool wgrad_source(const constant ConvTrainParams& p, int n, const thread int (&o)[3], const thread int (&k)[3],
                         int channel, thread I& offset) {
  int j[3];
  VOLCONV_UNROLL
  for (int i = 0; i < 3; ++i) {
    j[i] = o[i] * p.stride[i] - p.pad_lo[i] + k[i] * p.kernel_dilation[i];
    if (p.input_dilation[i] != 1) {
      if (j[i] < 0 || j[i] % p.input_dilation[i] != 0) return false;
      j[i] /= p.input_dilation[i];
    }
    j[i] = padded_source(p.pad_mode[i], p.in_size[i], j[i]);
    if (j[i] < 0) return false;
  }
  offset = I(n) * I(p.in_stride_n) + I(j[0]) * I(p.in_stride_d) + I(j[1]) * I(p.in_stride_h) + I(j[2]) * p.c_in +
           channel;
  return true;
}

// Logical tap t -> (k0, k1, k2), and the stored tap its gradient belongs to.
inline int wgrad_tap(int t, const constant ConvTrainParams& p, thread int (&k)[3]) {
  k[2] = t % p.k_size[2];
  k[1] = (t / p.k_size[2]) % p.k_size[1];
  k[0] = t / (p.k_size[2] * p.k_size[1]);
  int stored = 0;
  VOLCONV_UNROLL
  for (int i = 0; i < 3; ++i) stored = stored * p.k_size[i] + (p.flip ? p.k_size[i] - 1 - k[i] : k[i]);
  return stored;
}

// Output position m -> batch n and (od, oh, ow).
template <typename I>
inline int wgrad_position(I m, const constant ConvTrainParams& p, thread int (&o)[3]) {
  const I n = m / I(p.rows_dhw);
  I rest = m - n * I(p.rows_dhw);
  const I od = rest / I(p.rows_hw);
  rest -= od * I(p.rows_hw);
  const I oh = rest / I(p.out_size[2]);
  o[0] = int(od);
  o[1] = int(oh);
  o[2] = int(rest - oh * p.out_size[2]);
  return int(n);
}

// One weight element's sum over positions [k_begin, k_end) in order: input
// channel `channel` at logical tap k times grad_output channel `co` (of all
// C_out). Reads of zero padding or an inserted zero are left out, or (with
// multiply_zeros, input dilation 1) multiplied: 0 * NaN = NaN.
template <typename T, typename I>
inline float wgrad_part_dot(const device T* input, const device T* grad_output, const constant ConvTrainParams& p,
                            const thread int (&k)[3], int channel, int co, I k_begin, I k_end, bool multiply_zeros) {
  float acc = 0.0f;
  if (k_begin >= k_end) return acc;
  int o[3];
  int n = wgrad_position<I>(k_begin, p, o);
  for (I m = k_begin; m < k_end; ++m) {
    I offset = 0;
    if (wgrad_source<I>(p, n, o, k, channel, offset))
      acc = fma(float(input[offset]), float(grad_output[m * I(p.c_out) + co]), acc);
    else if (multiply_zeros)
      acc = fma(0.0f, float(grad_output[m * I(p.c_out) + co]), acc);
    if (++o[2] == p.out_size[2]) {
      o[2] = 0;
      if (++o[1] == p.out_size[1]) {
        o[1] = 0;
        if (++o[0] == p.out_size[0]) {
          o[0] = 0;
          ++n;
        }
      }
    }
  }
  return acc;
}

// This thread's column of the B tile (fixed for every slice): the logical
// tap, the input channel, and whether the column is inside the weight row.
struct WgradColumn {
  int k[3];
  int channel;
  bool real;
};

// Loads positions [m0, m0 + BK) of a part (none at or past k_end) into the
// A tile [BM][LDA] (grad_output transposed: A[co][kk]) and the B tile
// [BK][LDB] (B[kk][column] = the input the column's tap reads at m0 + kk).
template <typename T, int BM, int BN, int BK, int NT, typename I>
inline void load_wgrad_slice(const device T* input, const device T* grad_output, const constant ConvTrainParams& p,
                             int g, int co0, const thread WgradColumn& column, I m0, I k_end,
                             threadgroup T* a_tile, threadgroup T* b_tile, uint tid) {
  constexpr int LDA = gemm_lda(BK, int(sizeof(T)));
  constexpr int LDB = gemm_ldb(BN, int(sizeof(T)));
  for (int e = int(tid); e < BM * BK; e += NT) {
    const int co = e % BM, kk = e / BM;
    const I m = m0 + kk;
    T v = T(0.0f);
    if (m < k_end && co0 + co < p.c_out_g) v = grad_output[m * I(p.c_out) + (g * p.c_out_g + co0 + co)];
    a_tile[co * LDA + kk] = v;
  }
  for (int kk = int(tid) / BN; kk < BK; kk += NT / BN) {
    const I m = m0 + kk;
    T v = T(0.0f);
    if (column.real && m < k_end) {
      int o[3];
      const int n = wgrad_position<I>(m, p, o);
      I offset = 0;
      if (wgrad_source<I>(p, n, o, column.k, column.channel, offset)) v = input[offset];
    }
    b_tile[kk * LDB + int(tid) % BN] = v;
  }
}

}  // namespace volconv

using namespace volconv;

// One threadgroup: BM output channels x BN weight columns (tap, input
// channel) of group g, over the positions of one part. A [BM][BK] holds
// grad_output transposed, B [BK][BN] the input gathered per column's tap.
template <typename T, int BM, int BN, int BK, int WM, int WN, typename I>
[[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]] void convtrain_wgrad_gemm(
    const device T* input [[buffer(0)]], const device T* grad_output [[buffer(1)]],
    device float* partials [[buffer(2)]], const constant ConvTrainParams& p [[buffer(3)]],
    threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0), uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint simd_gid [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  constexpr int NT = WM * WN * 32;
  constexpr int ESIZE = int(sizeof(T));
  constexpr int LDA = gemm_lda(BK, ESIZE);
  constexpr int LDB = gemm_ldb(BN, ESIZE);
  constexpr int A_TILE = gemm_a_tile(BM, BK, ESIZE);
  constexpr int B_TILE = gemm_b_tile(BK, BN, ESIZE);
  constexpr int TM = BM / (8 * WM);
  constexpr int TN = BN / (8 * WN);
  constexpr int B_ROW_STEP = NT / BN;
  static_assert(TM * 8 * WM == BM && TN * 8 * WN == BN && BK % 8 == 0, "tile must split into 8x8 fragments");
  static_assert(NT % BN == 0 && BK % B_ROW_STEP == 0, "threads must cover whole columns of the B tile");

  threadgroup T* a_tiles = smem;               // [2][BM][LDA]
  threadgroup T* b_tiles = smem + 2 * A_TILE;  // [2][BK][LDB]

  const int co0 = int(tgid.x) * BM;
  const int n0 = int(tgid.y) * BN;
  const int g = int(tgid.z) / p.parts;
  const int part = int(tgid.z) % p.parts;
  const I k_begin = I(part) * I(p.part_len);
  const I k_end = k_begin + I(p.part_len) < I(p.gemm_m) ? k_begin + I(p.part_len) : I(p.gemm_m);

  // This thread's B column: fixed for every slice.
  const int col = n0 + int(tid) % BN;
  WgradColumn column;
  column.real = col < p.phase_k;
  const int col_tap = column.real ? col / p.c_in_g : 0;
  column.channel = g * p.c_in_g + (col - col_tap * p.c_in_g);
  wgrad_tap(col_tap, p, column.k);

  const int sm_row = int(simd_gid) / WN * (TM * 8);
  const int sn_col = int(simd_gid) % WN * (TN * 8);
  short fr, fc;
  fragment_coord(ushort(lane), fr, fc);
  simdgroup_matrix<float, 8, 8> acc[TM][TN];
  zero_accumulators(acc);

  const int num_slices = k_end > k_begin ? int((k_end - k_begin + BK - 1) / BK) : 0;
  load_wgrad_slice<T, BM, BN, BK, NT, I>(input, grad_output, p, g, co0, column, k_begin, k_end, a_tiles, b_tiles,
                                          tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int s = 0; s < num_slices; ++s) {
    // As in conv3d_gemm: buffer (s + 1) & 1 was last read before the barrier
    // that ended iteration s - 1.
    if (s + 1 < num_slices)
      load_wgrad_slice<T, BM, BN, BK, NT, I>(input, grad_output, p, g, co0, column, k_begin + I(s + 1) * BK, k_end,
                                              a_tiles + ((s + 1) & 1) * A_TILE, b_tiles + ((s + 1) & 1) * B_TILE,
                                              tid);
    mma_tile<T, TM, TN, BK, LDA, LDB>(acc, a_tiles + (s & 1) * A_TILE, b_tiles + (s & 1) * B_TILE, sm_row,
                                      sn_col, fr, fc);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  const I part_base = I(part) * I(p.weight_elements);
  VOLCONV_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int co = co0 + sm_row + i * 8 + fr;
    if (co >= p.c_out_g) continue;
    const I row = part_base + I(g * p.c_out_g + co) * I(p.phase_k);
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) {
      VOLCONV_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int n = n0 + sn_col + j * 8 + fc + e;
        if (n >= p.phase_k) continue;
        const int t = n / p.c_in_g;
        int k[3];
        const int stored = wgrad_tap(t, p, k);
        float sum = acc[i][j].thread_elements()[e];
        // The B tile holds zeros where a tap reads padding or an inserted
        // zero, so 0 * NaN = NaN reached the sum; under the skip rule a
        // non-finite sum is redone over the real elements only (finite sums
        // met no non-finite value, so are already right).
        if (!p.multiply_zeros && !isfinite(sum))
          sum = wgrad_part_dot<T, I>(input, grad_output, p, k, g * p.c_in_g + (n - t * p.c_in_g),
                                     g * p.c_out_g + co, k_begin, k_end, false);
        partials[row + (stored * p.c_in_g + (n - t * p.c_in_g))] = sum;
      }
    }
  }
}

// Depthwise weight gradient (one input channel per group): per (output
// channel, tap) a dot product over the part's positions, too thin for a
// GEMM. A thread walks its positions in order, one counter per dimension.
// Reads of zero padding are left out, or multiplied where the problem's rule
// says so (multiply_zeros).
template <typename T, typename I>
[[kernel, max_total_threads_per_threadgroup(TrainingTile::THREADS)]] void convtrain_wgrad_depthwise(
    const device T* input [[buffer(0)]], const device T* grad_output [[buffer(1)]],
    device float* partials [[buffer(2)]], const constant ConvTrainParams& p [[buffer(3)]],
    threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0), uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint simd_gid [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  constexpr int BC = TrainingTile::CHANNELS;
  constexpr int TY = TrainingTile::THREADS / BC;
  const int co = int(tgid.x) * BC + int(tid) % BC;
  const int tap = int(tgid.y) * TY + int(tid) / BC;
  const int part = int(tgid.z);
  if (co >= p.c_out || tap >= p.taps) return;  // no barrier in this kernel
  const int channel = co / p.c_out_g;  // C_in_g == 1: the group's input channel
  int k[3];
  const int stored = wgrad_tap(tap, p, k);
  const I k_begin = I(part) * I(p.part_len);
  const I k_end = k_begin + I(p.part_len) < I(p.gemm_m) ? k_begin + I(p.part_len) : I(p.gemm_m);
  const float acc =
      wgrad_part_dot<T, I>(input, grad_output, p, k, channel, co, k_begin, k_end, p.multiply_zeros != 0);
  partials[I(part) * I(p.weight_elements) + I(co) * p.taps + stored] = acc;
}

// dW = the partial sums added in part order (buffer 1 is the partials again:
// every kernel of the emulator and host takes three buffers).
template <typename T, typename I>
[[kernel, max_total_threads_per_threadgroup(TrainingTile::REDUCE_THREADS)]] void convtrain_wgrad_reduce(
    const device float* partials [[buffer(0)]], const device float* partials_again [[buffer(1)]],
    device T* grad_weight [[buffer(2)]], const constant ConvTrainParams& p [[buffer(3)]],
    threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0), uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint simd_gid [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  const I e = I(tgid.x) * TrainingTile::REDUCE_THREADS + I(tid);
  if (e >= I(p.weight_elements)) return;
  float sum = partials[e];
  for (int part = 1; part < p.parts; ++part) sum += partials[I(part) * I(p.weight_elements) + e];
  grad_weight[e] = T(sum);
}

#define VOLCONV_INSTANTIATE_WGRAD_GEMM(T, BM, BN, BK, WM, WN, IDX)                                      \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_TILE_KERNEL_NAME(wgrad_gemm, T, BM, BN, BK, WM, WN, IDX), \
                             convtrain_wgrad_gemm, T, BM, BN, BK, WM, WN, VOLCONV_INDEX_TYPE(IDX))
#define VOLCONV_INSTANTIATE_WGRAD_DEPTHWISE(T, IDX)                                                          \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_KERNEL_NAME(wgrad_depthwise, T, IDX), convtrain_wgrad_depthwise, \
                             T, VOLCONV_INDEX_TYPE(IDX))
#define VOLCONV_INSTANTIATE_WGRAD_REDUCE(T, IDX)                                                       \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_KERNEL_NAME(wgrad_reduce, T, IDX), convtrain_wgrad_reduce, T, \
                             VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(wgrad_gemm, float)
VOLCONV_WGRAD_GEMM_KERNELS(VOLCONV_INSTANTIATE_WGRAD_GEMM, float)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_gemm, half)
VOLCONV_WGRAD_GEMM_KERNELS(VOLCONV_INSTANTIATE_WGRAD_GEMM, half)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_gemm, bfloat)
VOLCONV_WGRAD_GEMM_KERNELS(VOLCONV_INSTANTIATE_WGRAD_GEMM, bfloat)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_depthwise, float)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_DEPTHWISE, float)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_depthwise, half)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_DEPTHWISE, half)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_depthwise, bfloat)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_DEPTHWISE, bfloat)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_reduce, float)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_REDUCE, float)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_reduce, half)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_REDUCE, half)
#endif
#if VOLCONV_LIBRARY_HAS(wgrad_reduce, bfloat)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_WGRAD_REDUCE, bfloat)
#endif
