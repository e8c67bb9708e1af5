// conv3d for tiny C_in (1-4 per group), where the general gather would fetch
// every input element once per tap. A threadgroup computes BM consecutive
// output positions of one (n, od, oh) row: it stages the input patch those
// positions see, KD*KH rows x patch_w columns x C_in_g channels, once in
// threadgroup memory (zero in the padding) and reads the GEMM's A fragments
// from it; the weights stream through double-buffered K-slices as in
// conv3d_gemm.
#include "conv3d_common.h"

using namespace volconv;

template <typename T, int BM, int BN, int BK, int WM, int WN, int VEC, typename I>
[[kernel, max_total_threads_per_threadgroup(WM * WN * 32)]] void conv3d_small_cin(const device T* input [[buffer(0)]], const device T* weight [[buffer(1)]],
                                 device T* output [[buffer(2)]], const constant Conv3dParams& p [[buffer(3)]],
                                 const device float* bias [[buffer(4)]], const device T* residual [[buffer(5)]],
                                 threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
                                 uint3 tgid [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint simd_gid [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  constexpr int NT = WM * WN * 32;
  constexpr int ESIZE = int(sizeof(T));
  constexpr int LDB = gemm_ldb(BN, ESIZE);
  constexpr int B_TILE = gemm_b_tile(BK, BN, ESIZE);
  constexpr int TM = BM / (8 * WM);
  constexpr int TN = BN / (8 * WN);
  static_assert(TM * 8 * WM == BM && TN * 8 * WN == BN && BK % 8 == 0, "tile must split into 8x8 fragments");

  threadgroup T* b_tiles = smem;             // [2][BK][LDB]
  threadgroup T* patch = smem + small_cin_patch_offset(BN, BK, ESIZE);  // [KD*KH][patch_w][C_in_g]

  // Which output row segment and which channels.
  const int ow0 = int(tgid.x) * BM;
  const I row = I(tgid.y);  // over N * Do * Ho
  const I rows_dh = I(p.out_size[0]) * p.out_size[1];
  const I n = row / rows_dh;
  const int dh = int(row - n * rows_dh);  // < Do * Ho < 2^31
  const int od = dh / p.out_size[1];
  const int oh = dh - od * p.out_size[1];
  const int g = int(tgid.z) / p.tiles_n;
  const int n0 = int(tgid.z) % p.tiles_n * BN;

  const int cg = p.c_in_g;
  const int pw = p.patch_w;
  const int kh_size = p.k_size[1];
  const int d_origin = od * p.stride[0] - p.pad_lo[0];
  const int h_origin = oh * p.stride[1] - p.pad_lo[1];
  const int w_origin = ow0 * p.stride[2] - p.pad_lo[2];
  const I batch_base = n * I(p.in_stride_n) + I(g) * cg;
  const int patch_size = int(small_cin_patch_elements(p.k_size[0], kh_size, pw, cg));
  const int last_w = (p.out_size[2] - 1) * p.stride[2] - p.pad_lo[2] + (p.k_size[2] - 1) * p.dilation[2];
  for (int e = int(tid); e < patch_size; e += NT) {
    const int c = e % cg;
    const int x = (e / cg) % pw;
    const int r = e / (cg * pw);
    // Padded coordinates read what their padding mode maps them to (-1: zero).
    // Patch columns past the last output's window (a short last segment)
    // may lie beyond one reflection: they are staged as zeros, never read.
    const int cw = w_origin + x;
    const int id = padded_source(p.pad_mode[0], p.in_size[0], d_origin + (r / kh_size) * p.dilation[0]);
    const int ih = padded_source(p.pad_mode[1], p.in_size[1], h_origin + (r % kh_size) * p.dilation[1]);
    const int iw = cw <= last_w ? padded_source(p.pad_mode[2], p.in_size[2], cw) : -1;
    T v = T(0.0f);
    if (id >= 0 && ih >= 0 && iw >= 0)
      v = input[batch_base + I(id) * I(p.in_stride_d) + I(ih) * I(p.in_stride_h) + I(iw) * p.c_in + c];
    patch[e] = v;
  }

  const int sm_row = int(simd_gid) / WN * (TM * 8);
  const int sn_col = int(simd_gid) % WN * (TN * 8);
  short fr, fc;
  fragment_coord(ushort(lane), fr, fc);
  simdgroup_matrix<float, 8, 8> acc[TM][TN];
  zero_accumulators(acc);
  // Patch offset of this lane's fragment rows (output position m = ow0 + row).
  const int row_step = p.stride[2] * cg;

  const int num_slices = (p.gemm_k + BK - 1) / BK;
  load_weight_tile<T, BN, BK, NT, VEC, I>(weight, p, g, n0, 0, b_tiles, tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (int s = 0; s < num_slices; ++s) {
    if (s + 1 < num_slices)
      load_weight_tile<T, BN, BK, NT, VEC, I>(weight, p, g, n0, (s + 1) * BK, b_tiles + ((s + 1) & 1) * B_TILE, tid);
    const threadgroup T* b_tile = b_tiles + (s & 1) * B_TILE;
    VOLCONV_UNROLL
    for (int k8 = 0; k8 < BK; k8 += 8) {
      // The patch offsets of this lane's two k columns; -1 past K.
      int k_offset[2];
      VOLCONV_UNROLL
      for (int e = 0; e < 2; ++e) {
        const int k = s * BK + k8 + fc + e;
        const int ci = k % cg;
        const int tap = k / cg;
        const int kw = tap % p.k_size[2];
        const int khd = tap / p.k_size[2];
        k_offset[e] = k < p.gemm_k ? ((khd * pw) + kw * p.dilation[2]) * cg + ci : -1;
      }
      simdgroup_matrix<float, 8, 8> a[TM];
      simdgroup_matrix<float, 8, 8> b[TN];
      VOLCONV_UNROLL
      for (int i = 0; i < TM; ++i) {
        const int m_offset = (sm_row + i * 8 + fr) * row_step;
        VOLCONV_UNROLL
        for (int e = 0; e < 2; ++e)
          a[i].thread_elements()[e] = k_offset[e] >= 0 ? float(patch[m_offset + k_offset[e]]) : 0.0f;
      }
      VOLCONV_UNROLL
      for (int j = 0; j < TN; ++j) load_fragment(b[j], b_tile, LDB, k8 + fr, sn_col + j * 8 + fc);
      VOLCONV_UNROLL
      for (int i = 0; i < TM; ++i) {
        VOLCONV_UNROLL
        for (int j = 0; j < TN; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }

  const I row_m0 = row * I(p.out_size[2]);
  VOLCONV_UNROLL
  for (int i = 0; i < TM; ++i) {
    const int ow = ow0 + sm_row + i * 8 + fr;
    if (ow >= p.out_size[2]) continue;
    VOLCONV_UNROLL
    for (int j = 0; j < TN; ++j) {
      VOLCONV_UNROLL
      for (int e = 0; e < 2; ++e)
        store_output(output, p, bias, residual, g, row_m0 + ow, n0 + sn_col + j * 8 + fc + e, acc[i][j].thread_elements()[e]);
    }
  }
}

#define VOLCONV_INSTANTIATE_SMALL_CIN(T, BM, BN, BK, WM, WN, VEC, IDX)                                   \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TILE_KERNEL_NAME(small_cin, T, BM, BN, BK, WM, WN, VEC, IDX),          \
                             conv3d_small_cin, T, BM, BN, BK, WM, WN, VEC, VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(small_cin, float)
VOLCONV_SMALL_CIN_KERNELS(VOLCONV_INSTANTIATE_SMALL_CIN, float)
#endif
#if VOLCONV_LIBRARY_HAS(small_cin, half)
VOLCONV_SMALL_CIN_KERNELS(VOLCONV_INSTANTIATE_SMALL_CIN, half)
#endif
#if VOLCONV_LIBRARY_HAS(small_cin, bfloat)
VOLCONV_SMALL_CIN_KERNELS(VOLCONV_INSTANTIATE_SMALL_CIN, bfloat)
#endif
