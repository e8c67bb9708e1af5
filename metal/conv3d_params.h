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
#define VOLCONV_GEMM_TILES(X, T, VEC) \
  X(T, 64, 64, 16, 2, 2, VEC)         \
  X(T, 64, 32, 16, 2, 2, VEC)         \
  X(T, 64, 16, 16, 4, 1, VEC)         \
  X(T, 64, 8, 16, 4, 1, VEC)          \
  X(T, 32, 32, 16, 2, 2, VEC)

// The small-C_in kernel tiles one output row segment of BM positions.
#define VOLCONV_SMALL_CIN_TILES(X, T, VEC) \
  X(T, 32, 64, 16, 2, 2, VEC)              \
  X(T, 32, 32, 16, 2, 2, VEC)              \
  X(T, 32, 16, 16, 2, 2, VEC)

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

// The depthwise kernel's fixed tile: 128 threads over 32 output channels,
// each thread computing POSITIONS_PER_THREAD output positions.
struct DepthwiseTile {
  VOLCONV_CONST int THREADS = 128;
  VOLCONV_CONST int CHANNELS = 32;
  VOLCONV_CONST int POSITIONS_PER_THREAD = 2;
};

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
  int32_t reserved;       // keeps the size a multiple of 8 under both compilers
};

}  // namespace volconv
