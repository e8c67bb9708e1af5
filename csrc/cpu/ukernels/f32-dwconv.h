// f32 depthwise micro-kernel (channel-vectorised direct convolution): MR
// output positions x NV channel vectors; per tap one weight vector per
// channel vector is shared by the MR rows, and each row adds input * weight
// elementwise. No reduction across lanes, so no packing of the input.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

template <class V, int MR, int NV>
void f32_dwconv(const volconv::cpu::DwconvParams& p) {
  using Reg = typename V::V;
  constexpr int L = V::L, NR = NV * L;
  const std::int64_t off = p.a_offset;
  if (p.nc == NR && p.a_step > 0) {
    // Interior tile: one pointer per tap, rows a fixed step apart.
    Reg acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    const std::int64_t step = p.a_step;
    for (std::int64_t s = 0; s < p.ks; ++s) {
      const float* wp = p.w + p.w_off[s];
      const float* x0 = p.a[s] + off;
      Reg wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = V::load(wp + v * L);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(V::load(x0 + r * step + v * L), wv[v], acc[r][v]);
    }
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::store(p.c + r * NR + v * L, acc[r][v]);
    return;
  }
  if (p.nc == NR) {
    Reg acc[MR][NV];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    for (std::int64_t s = 0; s < p.ks; ++s) {
      const float* wp = p.w + p.w_off[s];
      Reg wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = V::load(wp + v * L);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        const float* x = p.a[s * MR + r] + off;
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(V::load(x + v * L), wv[v], acc[r][v]);
      }
    }
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) V::store(p.c + r * NR + v * L, acc[r][v]);
    return;
  }
  // Channel tail: one vector at a time, partial loads so no lane reads past
  // the last channel of the input.
  // (Called with per-row pointers only: a_step is 0 here.)
  for (int v0 = 0; v0 < p.nc; v0 += L) {
    const int n = p.nc - v0 < L ? p.nc - v0 : L;
    Reg acc[MR];
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) acc[r] = V::zero();
    for (std::int64_t s = 0; s < p.ks; ++s) {
      const Reg wv = V::load_partial(p.w + p.w_off[s] + v0, n);
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) acc[r] = V::fma(V::load_partial(p.a[s * MR + r] + off + v0, n), wv, acc[r]);
    }
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) V::store_partial(p.c + r * NR + v0, acc[r], n);
  }
}

}  // namespace
