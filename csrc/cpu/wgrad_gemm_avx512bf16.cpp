// The weight gradient's bf16 GEMM on vdpbf16ps (see wgrad_bf16_dot.h),
// compiled with AVX512_BF16: a 6 x 64 float32 tile is 24 of the 32 zmm
// registers, 4 more hold the x pair vectors, 1 the broadcast g pair; each
// instruction adds two positions' products to each of 16 lanes.
#include <immintrin.h>

#include "ukernels/vec-avx512f.h"
#include "wgrad_bf16_dot.h"

namespace volconv::cpu {
namespace {

// MR rows of c x NV vectors of 16 columns at (i, j); TAIL: one vector of
// the `mask` columns, masked (the rest of c stays untouched).
template <int MR, int NV, bool TAIL = false>
void dot_tile(std::int64_t npairs, std::int64_t i, std::int64_t j, const std::uint32_t* g, std::int64_t ldg,
              const std::uint32_t* x, std::int64_t ldx, float* c, std::int64_t ldc, __mmask16 mask = 0xffff) {
  static_assert(!TAIL || NV == 1, "a masked tile is one vector wide");
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const float* a = c + (i + r) * ldc + j + v * 16;
      acc[r][v] = TAIL ? _mm512_maskz_loadu_ps(mask, a) : _mm512_loadu_ps(a);
    }
  for (std::int64_t q = 0; q < npairs; ++q) {
    __m512bh xv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const std::uint32_t* a = x + q * ldx + j + v * 16;
      xv[v] = (__m512bh)(TAIL ? _mm512_maskz_loadu_epi32(mask, a) : _mm512_loadu_si512(a));
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512bh gb = (__m512bh)_mm512_set1_epi32(int(g[q * ldg + i + r]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], gb, xv[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* a = c + (i + r) * ldc + j + v * 16;
      if constexpr (TAIL)
        _mm512_mask_storeu_ps(a, mask, acc[r][v]);
      else
        _mm512_storeu_ps(a, acc[r][v]);
    }
}

// MR rows: 64-column tiles, then 32 and 16, then the last columns masked.
template <int MR>
void dot_rows(std::int64_t npairs, std::int64_t i, std::int64_t n, const std::uint32_t* g, std::int64_t ldg,
              const std::uint32_t* x, std::int64_t ldx, float* c, std::int64_t ldc) {
  std::int64_t j = 0;
  for (; j + 64 <= n; j += 64) dot_tile<MR, 4>(npairs, i, j, g, ldg, x, ldx, c, ldc);
  for (; j + 32 <= n; j += 32) dot_tile<MR, 2>(npairs, i, j, g, ldg, x, ldx, c, ldc);
  for (; j + 16 <= n; j += 16) dot_tile<MR, 1>(npairs, i, j, g, ldg, x, ldx, c, ldc);
  if (j < n) dot_tile<MR, 1, true>(npairs, i, j, g, ldg, x, ldx, c, ldc, VecAvx512f::mask(int(n - j)));
}

void bf16_wgrad_dot(std::int64_t npairs, std::int64_t m, std::int64_t n, const std::uint32_t* g, std::int64_t ldg,
                    const std::uint32_t* x, std::int64_t ldx, float* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + 6 <= m; i += 6) dot_rows<6>(npairs, i, n, g, ldg, x, ldx, c, ldc);
  switch (m - i) {  // leftover rows in one narrower tile
    case 5: dot_rows<5>(npairs, i, n, g, ldg, x, ldx, c, ldc); break;
    case 4: dot_rows<4>(npairs, i, n, g, ldg, x, ldx, c, ldc); break;
    case 3: dot_rows<3>(npairs, i, n, g, ldg, x, ldx, c, ldc); break;
    case 2: dot_rows<2>(npairs, i, n, g, ldg, x, ldx, c, ldc); break;
    case 1: dot_rows<1>(npairs, i, n, g, ldg, x, ldx, c, ldc); break;
    default: break;
  }
}

}  // namespace

const WgradBf16Kernel& wgrad_bf16_dot_avx512bf16() {
  static const WgradBf16Kernel k{bf16_wgrad_dot, "bf16-wgrad-dot-6x64-avx512bf16"};
  return k;
}

}  // namespace volconv::cpu
