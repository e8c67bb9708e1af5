// f32 direct convolution for a few input channels (groups 1): one output row
// (all of W) for one block of NR output channels, the channels in the
// lanes. Each input value is broadcast against the tap's NR weights and
// feeds MR accumulators of consecutive positions (register blocking along
// W), so there is no gather and no K packing: the im2col-free GEMM with
// K = taps spent as much copying its tiny K panels as multiplying. Same
// call interface as the depthwise kernel (DwconvParams): x[q] / w[q] are the
// input row (at iw = 0, read every x_step floats) and the weights ([kw][NR],
// kw stride w_step) of the q-th (kd, kh, ci) row inside the input; weights
// are zero past nc.
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
  // Strided positions are addressed from one base per 3 (base + 0, 1 or 2
  // strides: x86's scaled index), so M = 12 needs 4 bases and the stride
  // instead of 12 live offsets, which spilled and cost a load per FMA row.
  constexpr int B = (M + 2) / 3;
  Reg acc[M][NV];
  zero_tile<V, M, NV>(acc);
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + (ow * p.stride - p.pad) * xs;
    const float* w = p.w[q];
    const float* xb[B];
#pragma GCC unroll 8
    for (int b = 0; b < B; ++b) xb[b] = x + (UNIT ? 0 : 3 * b * sw);
    for (std::int64_t kw = 0; kw < p.kw; ++kw, x += dw, w += p.w_step) {
      Reg wv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * L);
#pragma GCC unroll 32
      for (int r = 0; r < M; ++r) {
        const Reg in = V::broadcast(UNIT ? x + r : xb[r / 3] + (r % 3) * sw);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(in, wv[v], acc[r][v]);
      }
#pragma GCC unroll 8
      for (int b = 0; b < B; ++b) xb[b] += dw;
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
// MR / 2, 4 and 2, the W borders (and a last odd position) one at a time.
template <class V, int MR, int NV>
void f32_conv_cin1(const volconv::cpu::DwconvParams& p) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  const std::int64_t KW = p.kw, xs = p.x_step;
  const RowInterior interior = row_interior(p);
  const std::int64_t lo = interior.lo, hi = interior.hi;

  // One output position, taps [kw0, kw1). Four partial sums, rows q = s mod
  // 4 in sum s, added in a fixed order at the end: one chain of rows x taps
  // dependent FMAs ran at the FMA latency, and with few input channels these
  // positions (the W borders, the interior's last one) were a fifth of the
  // call (2x17x23x29, C_in 5 -> 7).
  auto single = [&](std::int64_t ow, std::int64_t kw0, std::int64_t kw1) {
    constexpr int S = 4;
    Reg acc[S][NV];
    zero_tile<V, S, NV>(acc);
    const std::int64_t iw0 = ow * p.stride - p.pad;  // may be < 0: index, then address
    auto tap = [&](int s, std::int64_t q, std::int64_t kw) {
      const Reg in = V::broadcast(p.x[q] + (iw0 + kw * p.dilation) * xs);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[s][v] = V::fma(in, V::load(p.w[q] + kw * p.w_step + v * L), acc[s][v]);
    };
    std::int64_t q = 0;
    for (; q + S <= p.rows; q += S)
      for (std::int64_t kw = kw0; kw < kw1; ++kw)
#pragma GCC unroll 4
        for (int s = 0; s < S; ++s) tap(s, q + s, kw);
    for (; q < p.rows; ++q)  // the last rows % 4 into sum 0 (a runtime index would spill the sums)
      for (std::int64_t kw = kw0; kw < kw1; ++kw) tap(0, q, kw);
    const float one = 1.0f;
    const Reg ones = V::broadcast(&one);  // a + b as fma(a, 1, b): one rounding, as an add
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[0][v] = V::fma(V::fma(acc[3][v], ones, acc[2][v]), ones, V::fma(acc[1][v], ones, acc[0][v]));
    float* y = p.y + ow * p.y_step;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const int n = p.nc - v * L;
      if (n >= L)
        V::store(y + v * L, acc[0][v]);
      else if (n > 0)
        V::store_partial(y + v * L, acc[0][v], n);
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
