// f32 direct convolution for one input channel (groups 1): one output row
// (all of W) for one block of NR output channels, the channels in the
// lanes. Each input value is broadcast against the tap's NR weights and
// feeds MR accumulators of consecutive positions (register blocking along
// W), so there is no gather and no K packing: the im2col-free GEMM with
// K = taps spent as much copying its tiny K panels as multiplying. Same
// call interface as the depthwise kernel (DwconvParams): x[q] / w[q] are the
// input row (at iw = 0) and the weights ([kw][NR], kw stride w_step) of the
// q-th (kd, kh) tap inside the input; weights are zero past nc.
#pragma once

#include <cstdint>
#include <type_traits>

#include "row-window.h"
#include "ukernel.h"

namespace {

// M positions from ow, all kw inside the input. UNIT: consecutive positions
// read consecutive floats (stride 1, x_step 1), so the M input addresses are
// one pointer plus constant offsets instead of M live offset registers.
template <class V, int M, int NV, bool UNIT>
void f32_conv_cin1_tile(const volconv::cpu::DwconvParams& p, std::int64_t ow, bool stream) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  const std::int64_t xs = p.x_step, sw = p.stride * xs, dw = p.dilation * xs;
  Reg acc[M][NV];
  zero_tile<V, M, NV>(acc);
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + (ow * p.stride - p.pad) * xs;
    const float* w = p.w[q];
    for (std::int64_t kw = 0; kw < p.kw; ++kw, x += dw, w += p.w_step) {
      Reg wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * L);
#pragma GCC unroll 32
      for (int r = 0; r < M; ++r) {
        const Reg in = V::broadcast(x + (UNIT ? r : r * sw));
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(in, wv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      float* y = p.y + (ow + r) * p.y_step + v * L;
      const int n = p.nc - v * L;
      if (n >= L)
        stream ? V::stream(y, acc[r][v]) : V::store(y, acc[r][v]);
      else if (n > 0)
        V::store_partial(y, acc[r][v], n);
    }
}

// Interior tiles of MR positions, the rest of the interior in tiles of
// MR / 2, 4 and 2 (one position alone is a chain of dependent FMAs, several
// times slower per position), the W borders one position at a time.
template <class V, int MR, int NV>
void f32_conv_cin1(const volconv::cpu::DwconvParams& p) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  const std::int64_t KW = p.kw, xs = p.x_step;
  const RowInterior interior = row_interior(p);
  const std::int64_t lo = interior.lo, hi = interior.hi;

  // One output position, taps [kw0, kw1).
  auto single = [&](std::int64_t ow, std::int64_t kw0, std::int64_t kw1) {
    Reg acc[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[v] = V::zero();
    for (std::int64_t q = 0; q < p.rows; ++q) {
      const std::int64_t iw0 = ow * p.stride - p.pad;  // may be < 0: index, then address
      for (std::int64_t kw = kw0; kw < kw1; ++kw) {
        const Reg in = V::broadcast(p.x[q] + (iw0 + kw * p.dilation) * xs);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[v] = V::fma(in, V::load(p.w[q] + kw * p.w_step + v * L), acc[v]);
      }
    }
    float* y = p.y + ow * p.y_step;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int n = p.nc - v * L;
      if (n >= L)
        V::store(y + v * L, acc[v]);
      else if (n > 0)
        V::store_partial(y + v * L, acc[v], n);
    }
  };

  const bool stream = row_can_stream<V>(p);
  row_borders(p, 0, lo, single);
  std::int64_t ow = lo;
  auto tiles = [&](auto unit) {
    constexpr bool U = decltype(unit)::value;
    for (; ow + MR <= hi; ow += MR) f32_conv_cin1_tile<V, MR, NV, U>(p, ow, stream);
    if constexpr (MR / 2 > 4)
      if (ow + MR / 2 <= hi) f32_conv_cin1_tile<V, MR / 2, NV, U>(p, ow, stream), ow += MR / 2;
    if constexpr (MR > 4)
      if (ow + 4 <= hi) f32_conv_cin1_tile<V, 4, NV, U>(p, ow, stream), ow += 4;
    if (ow + 2 <= hi) f32_conv_cin1_tile<V, 2, NV, U>(p, ow, stream), ow += 2;
  };
  if (p.stride * xs == 1)
    tiles(std::true_type{});
  else
    tiles(std::false_type{});
  for (; ow < hi; ++ow) single(ow, 0, KW);
  row_borders(p, hi, p.wo, single);
}

}  // namespace
