// bf16 indirect-GEMM micro-kernel on vdpbf16ps (AVX512_BF16): each
// instruction multiplies a pair of bf16 inputs by a pair of bf16 weights and
// adds both products to an fp32 lane, so K advances two at a time. Weights
// are packed pair-interleaved ([tap][kc/2][NR][2]) and the input pair (k,
// k+1) of a row is broadcast as one 32-bit value; kc must be even.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ukernel.h"

namespace {

template <int MR, int NV>
void bf16_igemm_dpbf16(const volconv::cpu::IgemmParams& p) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = p.accumulate ? _mm512_loadu_ps(p.c + r * NR + v * 16) : _mm512_setzero_ps();

  // Rows as bytes: a row of a caller's view may start at an odd address
  // (bf16 is read in place), where a uint16_t pointer would be misaligned.
  const char* const* a = reinterpret_cast<const char* const*>(p.a);
  const std::uint16_t* w = static_cast<const std::uint16_t*>(p.w);
  const std::int64_t kp = p.kc / 2;
  for (std::int64_t s = 0; s < p.ks; ++s) {
    const char* ar[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) ar[r] = a[s * MR + r];
    const std::uint16_t* wp = w + p.w_off[s];
    for (std::int64_t k = 0; k < kp; ++k) {
      __m512bh b[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(wp + v * 32);
      wp += 2 * NR;
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        std::int32_t pair;
        std::memcpy(&pair, ar[r] + 4 * k, 4);
        const __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], x, b[v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(p.c + r * NR + v * 16, acc[r][v]);
}

}  // namespace
