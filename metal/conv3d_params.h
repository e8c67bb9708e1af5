// The parameters of one conv3d dispatch, shared verbatim by the host planner
// (C++) and the kernels (MSL): one definition, so the two cannot disagree on
// the layout. Only fixed-width members, 64-bit ones first, so the struct has
// the same layout under both compilers (checked by a static_assert in C++).
#pragma once

#ifndef __METAL_VERSION__
#include <cstdint>
#endif

// Tile configurations of the GEMM kernels, as (BM, BN, BK, WM, WN): a
// threadgroup computes a BM x BN output tile over K-slices of BK with
// WM x WN simdgroups. The planner reads the same list (one source of truth
// for what is instantiated and what may be chosen).
#define VOLCONV_GEMM_TILES(X, T, VEC, IDX) \
  X(T, 64, 64, 16, 2, 2, VEC, IDX)         \
  X(T, 64, 32, 16, 2, 2, VEC, IDX)         \
  X(T, 64, 16, 16, 4, 1, VEC, IDX)         \
  X(T, 64, 8, 16, 4, 1, VEC, IDX)          \
  X(T, 32, 32, 16, 2, 2, VEC, IDX)

// The small-C_in kernel tiles one output row segment of BM positions.
#define VOLCONV_SMALL_CIN_TILES(X, T, VEC, IDX) \
  X(T, 32, 64, 16, 2, 2, VEC, IDX)              \
  X(T, 32, 32, 16, 2, 2, VEC, IDX)              \
  X(T, 32, 16, 16, 2, 2, VEC, IDX)

// Index arithmetic: idx32 instantiations compute every offset in 32 bits
// (Apple GPUs have no integer divider; a 64-bit division is a long software
// sequence); the planner picks them when every offset of the problem fits.
// idx64 ("_large", as MLX names them) take the rest.
#define VOLCONV_INDEX_TYPE_idx32 int32_t
#define VOLCONV_INDEX_TYPE_idx64 int64_t
#define VOLCONV_INDEX_TYPE(IDX) VOLCONV_INDEX_TYPE_##IDX
#define VOLCONV_INDEX_SUFFIX_idx32 ""
#define VOLCONV_INDEX_SUFFIX_idx64 "_large"
#define VOLCONV_INDEX_SUFFIX(IDX) VOLCONV_INDEX_SUFFIX_##IDX

// Every instantiation of one element type T, as X(T, <tile>, VEC, IDX):
// both vector widths and both index widths of each tile.
#define VOLCONV_EACH_VARIANT(TILES, X, T) \
  TILES(X, T, 1, idx32) TILES(X, T, 4, idx32) TILES(X, T, 1, idx64) TILES(X, T, 4, idx64)
#define VOLCONV_GEMM_KERNELS(X, T) VOLCONV_EACH_VARIANT(VOLCONV_GEMM_TILES, X, T)
#define VOLCONV_SMALL_CIN_KERNELS(X, T) VOLCONV_EACH_VARIANT(VOLCONV_SMALL_CIN_TILES, X, T)
#define VOLCONV_DEPTHWISE_VARIANTS(X, T, VEC, IDX) X(T, VEC, IDX)
#define VOLCONV_DEPTHWISE_KERNELS(X, T) VOLCONV_EACH_VARIANT(VOLCONV_DEPTHWISE_VARIANTS, X, T)

// The kernel-name scheme ([[host_name]]; MSL has no strings, so names are
// built by the preprocessor): the instantiations in metal/*.metal and the
// planner's kernel table both expand these.
#define VOLCONV_TILE_KERNEL_NAME(FAMILY, T, BM, BN, BK, WM, WN, VEC, IDX)                       \
  "conv3d_" #FAMILY "_" #T "_" #BM "x" #BN "x" #BK "_" #WM "x" #WN "_v" #VEC VOLCONV_INDEX_SUFFIX(IDX)
#define VOLCONV_DEPTHWISE_KERNEL_NAME(T, VEC, IDX) "conv3d_depthwise_" #T "_v" #VEC VOLCONV_INDEX_SUFFIX(IDX)

// Which instantiations one compile of the library holds. Offline compiles
// and the emulator take everything (0); the Metal host compiles one kernel
// family for one element type on first use, defining both macros.
#ifndef VOLCONV_LIBRARY_FAMILY
#define VOLCONV_LIBRARY_FAMILY 0
#endif
#ifndef VOLCONV_LIBRARY_DTYPE
#define VOLCONV_LIBRARY_DTYPE 0
#endif
#define VOLCONV_FAMILY_gemm 1
#define VOLCONV_FAMILY_pointwise 2
#define VOLCONV_FAMILY_small_cin 3
#define VOLCONV_FAMILY_depthwise 4
#define VOLCONV_FAMILY_self_check 5
#define VOLCONV_DTYPE_float 1
#define VOLCONV_DTYPE_half 2
#define VOLCONV_DTYPE_bfloat 3
#define VOLCONV_LIBRARY_HAS(FAMILY, T)                                                     \
  ((VOLCONV_LIBRARY_FAMILY == 0 || VOLCONV_LIBRARY_FAMILY == VOLCONV_FAMILY_##FAMILY) && \
   (VOLCONV_LIBRARY_DTYPE == 0 || VOLCONV_LIBRARY_DTYPE == VOLCONV_DTYPE_##T))

// Every static data member is a program-scope variable, which Apple's
// compiler accepts only in the constant address space ("program scope
// variable must reside in constant address space"); the host's C++ has no
// such qualifier. Each such member is declared through this macro.
#ifdef __METAL_VERSION__
#define VOLCONV_CONST static constant constexpr
#else
#define VOLCONV_CONST static constexpr
#endif

namespace volconv {

// Padding modes and activations as the params carry them: the values of
// volconv::PaddingMode and volconv::Activation (the planner static_asserts
// that they agree).
struct PadModeCode {
  VOLCONV_CONST int ZEROS = 0;
  VOLCONV_CONST int REFLECT = 1;
  VOLCONV_CONST int REPLICATE = 2;
  VOLCONV_CONST int CIRCULAR = 3;
};
struct ActivationCode {
  VOLCONV_CONST int NONE = 0;
  VOLCONV_CONST int RELU = 1;
  VOLCONV_CONST int SILU = 2;
  VOLCONV_CONST int GELU_TANH = 3;
};

// The depthwise kernel's fixed tile: 128 threads over 32 output channels,
// each thread computing POSITIONS_PER_THREAD output positions.
struct DepthwiseTile {
  VOLCONV_CONST int THREADS = 128;
  VOLCONV_CONST int CHANNELS = 32;
  VOLCONV_CONST int POSITIONS_PER_THREAD = 2;
};

// Threadgroup memory layouts, in elements of the kernel's type: the kernels
// carve their buffer with these and the planner sizes it with them, so the
// two cannot disagree. Rows of a tile are padded by 16 bytes, so that
// consecutive rows start in different banks.
constexpr int tile_pad(int element_size) { return 16 / element_size; }
// conv3d_gemm: [2][BM][BK + pad] slices of A, then [2][BK][BN + pad] of B.
constexpr int gemm_lda(int bk, int element_size) { return bk + tile_pad(element_size); }
constexpr int gemm_ldb(int bn, int element_size) { return bn + tile_pad(element_size); }
constexpr int gemm_a_tile(int bm, int bk, int element_size) { return bm * gemm_lda(bk, element_size); }
constexpr int gemm_b_tile(int bk, int bn, int element_size) { return bk * gemm_ldb(bn, element_size); }
constexpr int gemm_threadgroup_elements(int bm, int bn, int bk, int element_size) {
  return 2 * (gemm_a_tile(bm, bk, element_size) + gemm_b_tile(bk, bn, element_size));
}
// conv3d_small_cin: [2][BK][BN + pad] slices of B, then the input patch
// [KD * KH][patch_w][C_in_g] at this offset.
constexpr int small_cin_patch_offset(int bn, int bk, int element_size) {
  return 2 * gemm_b_tile(bk, bn, element_size);
}
constexpr int64_t small_cin_patch_elements(int64_t kd, int64_t kh, int64_t patch_w, int64_t c_in_g) {
  return kd * kh * patch_w * c_in_g;
}
// conv3d_depthwise: the weights of CHANNELS output channels, [taps][CHANNELS].
constexpr int64_t depthwise_threadgroup_elements(int64_t taps) { return taps * DepthwiseTile::CHANNELS; }

struct Conv3dParams {
  // Offsets that can pass 2^31 are 64-bit; everything the kernels multiply
  // them with is widened before the multiplication.
  int64_t gemm_m;        // N * Do * Ho * Wo: rows of the implicit GEMM
  int64_t in_stride_n;   // D * H * W * C_in (contiguous NDHWC input)
  int64_t in_stride_d;   // H * W * C_in
  int64_t in_stride_h;   // W * C_in
  int64_t out_rows_dhw;  // Do * Ho * Wo
  int64_t out_rows_hw;   // Ho * Wo

  int32_t batch;
  int32_t in_size[3];     // D, H, W
  int32_t c_in;
  int32_t k_size[3];      // KD, KH, KW
  int32_t c_out;
  int32_t out_size[3];    // Do, Ho, Wo
  int32_t stride[3];
  int32_t pad_lo[3];      // the high padding is implied by out_size
  int32_t dilation[3];
  int32_t groups;
  int32_t c_in_g;         // C_in / groups
  int32_t c_out_g;        // C_out / groups
  int32_t taps;           // KD * KH * KW
  int32_t gemm_k;         // taps * c_in_g: the GEMM's depth, a weight row's length
  int32_t tiles_n;        // threadgroups along c_out_g (grid z = groups * tiles_n
                          // for the kernels that fold groups and N tiles)
  int32_t patch_w;        // small-C_in kernel: input columns staged per threadgroup
  // What the padding holds per axis (D, H, W), as volconv::PaddingMode:
  // read through padded_source() in the loaders, never a padded copy.
  int32_t pad_mode[3];
  // The fused epilogue (volconv::Epilogue), applied to the tile in
  // registers: + bias[channel] (float32, buffer 4) when has_bias, then the
  // activation (volconv::Activation), then + residual (buffer 5, the
  // output's layout and type) when has_residual.
  int32_t activation;
  int32_t has_bias;
  int32_t has_residual;
  int32_t reserved;       // keeps the size a multiple of 8 under both compilers
};

}  // namespace volconv
