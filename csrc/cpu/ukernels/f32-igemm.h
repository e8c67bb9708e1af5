// f32 indirect-GEMM micro-kernel, written once against vector traits V and
// instantiated per ISA: MR rows x NV vectors of accumulators stay in
// registers for the whole K loop; each k loads NV weight vectors and
// broadcasts one input value per row. KS is the distance between
// consecutive K elements of a row: 1 when rows are read in place (NDHWC
// channels), MR for a k-major packed panel (a[r] = panel + r), where the MR
// values of one k sit side by side.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

template <class V, int MR, int NV, int KS = 1>
void f32_igemm(const volconv::cpu::IgemmParams& p) {
  using Reg = typename V::V;
  constexpr int L = V::L, NR = NV * L;
  Reg acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = p.accumulate ? V::load(p.c + r * NR + v * L) : V::zero();

  const float* const* a = reinterpret_cast<const float* const*>(p.a);
  const float* w = static_cast<const float*>(p.w);
  const std::int64_t kc = p.kc;
  for (std::int64_t s = 0; s < p.ks; ++s) {
    const float* ar[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) ar[r] = a[s * MR + r];
    const float* wp = w + p.w_off[s];
    for (std::int64_t k = 0; k < kc; ++k) {
      Reg b[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) b[v] = V::load(wp + v * L);
      wp += NR;
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        // k-major: one base pointer, constant offsets (no MR pointer registers).
        const Reg x = V::broadcast(KS == 1 ? ar[r] + k : ar[0] + r + k * KS);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(x, b[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) V::store(p.c + r * NR + v * L, acc[r][v]);
}

}  // namespace
