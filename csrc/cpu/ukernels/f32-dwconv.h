// f32 depthwise micro-kernel (channel-vectorised direct convolution over
// NDHWC): one output row (all of W) for one block of NR channels. The
// driver lists the (kd, kh) taps that fall inside the input for this row, so
// D/H padding costs nothing here; along W the interior range, where every kw
// reads inside the input, runs in register tiles with no checks, and only
// the few border positions compute their kw range. No reduction across
// lanes, so no packing of the input.
#pragma once

#include <cstdint>

#include "row-window.h"
#include "ukernel.h"

namespace {

// Stride 1, dilation 1, KW taps: MR positions x NV channel vectors at
// channel c0, the KW x NV weights in registers; each input vector is loaded
// once and feeds up to KW accumulators (register blocking along W), so a
// tile costs MR + KW - 1 loads per KW * MR FMAs instead of one per FMA.
// TAIL: the last vector holds only `tail` channels (masked loads/stores).
template <class V, int MR, int NV, int KW, bool TAIL = false>
void f32_dwconv_wblock(const volconv::cpu::DwconvParams& p, std::int64_t ow, int c0, int tail, bool stream) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  const std::int64_t xs = p.x_step;
  auto load = [&](const float* a, int v) {
    return TAIL && v == NV - 1 ? V::load_partial(a + v * L, tail) : V::load(a + v * L);
  };
  Reg acc[MR][NV];
  zero_tile<V, MR, NV>(acc);
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + (ow - p.pad) * xs + c0;
    const float* w = p.w[q] + c0;
    Reg wv[KW][NV];
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[kw][v] = load(w + kw * p.w_step, v);
#pragma GCC unroll 64
    for (int j = 0; j < MR + KW - 1; ++j, x += xs) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) {
        Reg in = load(x, v);
        V::keep(in);
#pragma GCC unroll 8
        for (int kw = 0; kw < KW; ++kw)
          if (j - kw >= 0 && j - kw < MR) acc[j - kw][v] = V::fma(in, wv[kw][v], acc[j - kw][v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* y = p.y + (ow + r) * p.y_step + c0 + v * L;
      if (TAIL && v == NV - 1)
        V::store_partial(y, acc[r][v], tail);
      else
        stream ? V::stream(y, acc[r][v]) : V::store(y, acc[r][v]);
    }
}

// MR positions from ow, all channels of the block: pairs of vectors where
// 2 x (MR + KW) + 1 registers exist, then single vectors, the last partial.
template <class V, int MR, int KW>
void f32_dwconv_wblock_row(const volconv::cpu::DwconvParams& p, std::int64_t ow, bool stream) {
  constexpr int L = V::L;
  int c0 = 0;
  if constexpr (2 * (MR + KW) + 1 <= V::kRegs)
    for (; c0 + 2 * L <= p.nc; c0 += 2 * L) f32_dwconv_wblock<V, MR, 2, KW>(p, ow, c0, 0, stream);
  for (; c0 + L <= p.nc; c0 += L) f32_dwconv_wblock<V, MR, 1, KW>(p, ow, c0, 0, stream);
  if (c0 < p.nc) f32_dwconv_wblock<V, MR, 1, KW, true>(p, ow, c0, p.nc - c0, stream);
}

// Positions [ow, hi) of the interior in tiles of WMR, then WMR / 2, ... 1.
template <class V, int WMR, int KW>
void f32_dwconv_wblocks(const volconv::cpu::DwconvParams& p, std::int64_t ow, std::int64_t hi, bool stream) {
  for (; ow + WMR <= hi; ow += WMR) f32_dwconv_wblock_row<V, WMR, KW>(p, ow, stream);
  if constexpr (WMR > 1) f32_dwconv_wblocks<V, WMR / 2, KW>(p, ow, hi, stream);
}

// W-blocked tiles of WMR positions (then halves) for stride-1 windows 3 or
// 5 wide, MR x NV tiles (one load per FMA) for any other window, and one
// position at a time at the borders and tails.
template <class V, int MR, int NV, int WMR = MR>
void f32_dwconv(const volconv::cpu::DwconvParams& p) {
  using Reg = typename V::V;
  constexpr int L = V::L, NR = NV * L;
  const std::int64_t KW = p.kw, xs = p.x_step, sw = p.stride * xs, dw = p.dilation * xs;
  const RowInterior interior = row_interior(p);
  const std::int64_t lo = interior.lo, hi = interior.hi;

  // One output position, taps [kw0, kw1).
  auto single = [&](std::int64_t ow, std::int64_t kw0, std::int64_t kw1) {
    float* y = p.y + ow * p.y_step;
    for (int v0 = 0; v0 < p.nc; v0 += L) {
      const int n = p.nc - v0 < L ? p.nc - v0 : L;
      Reg acc = V::zero();
      for (std::int64_t q = 0; q < p.rows; ++q) {
        const std::int64_t iw0 = ow * p.stride - p.pad;  // may be < 0: index, then address
        const float* w = p.w[q] + v0;
        for (std::int64_t kw = kw0; kw < kw1; ++kw)
          acc = V::fma(V::load_partial(p.x[q] + (iw0 + kw * p.dilation) * xs + v0, n),
                       V::load_partial(w + kw * p.w_step, n), acc);
      }
      V::store_partial(y + v0, acc, n);
    }
  };

  const bool stream = row_can_stream<V>(p);
  row_borders(p, 0, lo, single);
  std::int64_t ow = lo;
  if (p.stride == 1 && p.dilation == 1 && (KW == 3 || KW == 5)) {
    KW == 3 ? f32_dwconv_wblocks<V, WMR, 3>(p, ow, hi, stream) : f32_dwconv_wblocks<V, WMR, 5>(p, ow, hi, stream);
    ow = hi;
  }
  if (p.nc == NR) {
    for (; ow + MR <= hi; ow += MR) {
      Reg acc[MR][NV];
      zero_tile<V, MR, NV>(acc);
      for (std::int64_t q = 0; q < p.rows; ++q) {
        const float* x = p.x[q] + (ow * p.stride - p.pad) * xs;
        const float* w = p.w[q];
        for (std::int64_t kw = 0; kw < KW; ++kw, x += dw, w += p.w_step) {
          Reg wv[NV];
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * L);
#pragma GCC unroll 32
          for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(V::load(x + r * sw + v * L), wv[v], acc[r][v]);
        }
      }
      float* y = p.y + ow * p.y_step;
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          stream ? V::stream(y + r * p.y_step + v * L, acc[r][v]) : V::store(y + r * p.y_step + v * L, acc[r][v]);
    }
  }
  for (; ow < hi; ++ow) single(ow, 0, KW);
  row_borders(p, hi, p.wo, single);
}

}  // namespace
