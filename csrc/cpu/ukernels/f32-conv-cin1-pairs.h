// f32 direct convolution for a few input channels (groups 1) and at most
// L / 2 output channels, at W stride 1: two adjacent output positions share
// a vector, channel c of position ow in lane 2c and of ow + 1 in lane 2c + 1.
// The one-vector row kernel (f32-conv-cin1.h) leaves the lanes past C_out
// idle: half of a zmm at 8 output channels, where cores with two 512-bit
// FMA pipes do twice a ymm's work per cycle, and half of a ymm at 4.
//
// A pair's two inputs, x[ow + kw * d] and x[ow + 1 + kw * d], are adjacent
// only in a channel-planar row, so the driver hands x[q] as the (kd, kh, ci)
// row of a planar copy (float_rows.h, InputRows' planar mode): position 0 is
// iw = -padding_lo, the W padding holds zeros, and the copy runs on past the
// last position to at least round_up(wo, 16) + (kw - 1) * dilation floats, so
// every tile, the last one too, reads inside it and no position is a border
// case. Outputs past wo are computed and dropped. Same call interface as the
// other row kernels (DwconvParams) with x_step 1, stride 1 and pad 0; w[q]
// is [kw][w_step] with zeros past nc.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

// M positions (M / 2 accumulators) from ow.
template <class V, int M>
void f32_conv_cin1_pairs_tile(const volconv::cpu::DwconvParams& p, std::int64_t ow) {
  using Reg = typename V::V;
  constexpr int A = M / 2;
  Reg acc[A];
#pragma GCC unroll 16
  for (int a = 0; a < A; ++a) acc[a] = V::zero();
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + ow;
    const float* w = p.w[q];
    for (std::int64_t kw = 0; kw < p.kw; ++kw, x += p.dilation, w += p.w_step) {
      const Reg wv = V::dup_pairs(w);
#pragma GCC unroll 16
      for (int a = 0; a < A; ++a) acc[a] = V::fma(V::broadcast_pair(x + 2 * a), wv, acc[a]);
    }
  }
#pragma GCC unroll 16
  for (int a = 0; a < A; ++a) {
    const std::int64_t o = ow + 2 * a;
    if (o >= p.wo) break;
    V::store_pairs(p.y + o * p.y_step, o + 1 < p.wo ? p.y + (o + 1) * p.y_step : nullptr, acc[a], p.nc);
  }
}

// Tiles of M positions, the last one of M / 2 when that covers the rest:
// positions below round_up(wo, M / 2) are computed (the copy's slack).
template <class V, int M>
void f32_conv_cin1_pairs(const volconv::cpu::DwconvParams& p) {
  static_assert(M % 4 == 0 && M <= 32, "pairs of positions; the slack covers round_up(wo, 16)");
  std::int64_t ow = 0;
  for (; ow + M / 2 < p.wo; ow += M) f32_conv_cin1_pairs_tile<V, M>(p, ow);
  if (ow < p.wo) f32_conv_cin1_pairs_tile<V, M / 2>(p, ow);
}

}  // namespace
