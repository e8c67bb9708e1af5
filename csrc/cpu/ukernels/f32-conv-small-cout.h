// f32 direct convolution for few output channels (NC = C_out per group,
// 1-4): one output row, the reduction (C_in, and the W window when it is
// contiguous) in the lanes. With C_out in the lanes (igemm, cin1) an NR-wide
// tile would use NC of its NR lanes; here every lane multiplies, and each
// (position, channel) pair ends with one horizontal sum.
// Same call interface as the other row kernels (DwconvParams): x[q] / w[q]
// are the input row (at iw = 0, the group's first channel) and the packed
// weights of the q-th (kd, kh) tap inside the input. Weights per q:
// [c < NC][kw][ci], each channel's KW * cin run padded with zeros to w_step
// floats. A position sums tap by tap, each tap's C_in from lane 0; when
// the W window is contiguous (dilation * x_step == cin) and C_in is a
// multiple of L, its KW taps are read as one run of KW * cin floats, which
// adds the same lanes in the same order: a view's result is bit-identical to
// its contiguous copy's.
#pragma once

#include <cstdint>
#include <type_traits>

#include "row-window.h"
#include "ukernel.h"

namespace {

// Writes the lane sums of acc[r][c] to y + r * y_step + c, four at a time
// (V::sum_lanes4 reduces four vectors in one tree).
template <class V, int M, int NC>
inline __attribute__((always_inline)) void store_sums(typename V::V (&acc)[M][NC], float* y, std::int64_t y_step) {
  using Reg = typename V::V;
  constexpr int n = M * NC, groups = (n + 3) / 4;
  Reg v[groups * 4];
  float s[groups * 4];
#pragma GCC unroll 32
  for (int i = 0; i < groups * 4; ++i) v[i] = i < n ? acc[i / NC][i % NC] : V::zero();
#pragma GCC unroll 8
  for (int j = 0; j < groups; ++j) V::sum_lanes4(v + 4 * j, s + 4 * j);
#pragma GCC unroll 16
  for (int r = 0; r < M; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) {
      // The output may sit off float alignment (a caller's view): bytes are
      // copied through an untyped pointer (UBSan checks a typed one).
      void* dst = y + r * y_step + c;
      __builtin_memcpy(dst, s + r * NC + c, sizeof(float));
    }
}

// acc[r][c] += x_r[0..len) . w_c[0..len) for M positions (x_r = x + r * xr)
// and NC channels (w_c = w + c * wc); the tail of len % L is read partially
// (no lane past len is loaded: a neighbour's NaN would reach 0 * NaN).
template <class V, int M, int NC>
inline __attribute__((always_inline)) void dot_runs(typename V::V (&acc)[M][NC], const float* x, std::int64_t xr,
                                                    const float* w, std::int64_t wc, std::int64_t len) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  std::int64_t k = 0;
  for (; k + L <= len; k += L) {
    Reg wv[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) wv[c] = V::load(w + c * wc + k);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      Reg xv = V::load(x + r * xr + k);
      if (NC > 1) V::keep(xv);  // one load for NC FMAs, not one per FMA
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = V::fma(xv, wv[c], acc[r][c]);
    }
  }
  if (k < len) {
    const int n = int(len - k);
    Reg wv[NC];
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) wv[c] = V::load_partial(w + c * wc + k, n);
#pragma GCC unroll 16
    for (int r = 0; r < M; ++r) {
      const Reg xv = V::load_partial(x + r * xr + k, n);
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = V::fma(xv, wv[c], acc[r][c]);
    }
  }
}

// M positions from ow with taps [kw0, kw1) (all of them inside the input).
template <class V, int M, int NC>
void f32_conv_small_cout_tile(const volconv::cpu::DwconvParams& p, std::int64_t ow, std::int64_t kw0,
                              std::int64_t kw1) {
  using Reg = typename V::V;
  const std::int64_t xs = p.x_step, cin = p.cin, sw = p.stride * xs, dw = p.dilation * xs;
  const bool one_run = dw == cin && cin % V::L == 0;  // the taps one run, lanes as tap by tap
  Reg acc[M][NC];
  zero_tile<V, M, NC>(acc);
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + (ow * p.stride - p.pad + kw0 * p.dilation) * xs;
    const float* w = p.w[q] + kw0 * cin;
    if (one_run) {
      dot_runs<V, M, NC>(acc, x, sw, w, p.w_step, (kw1 - kw0) * cin);
      continue;
    }
    for (std::int64_t kw = kw0; kw < kw1; ++kw, x += dw, w += cin) dot_runs<V, M, NC>(acc, x, sw, w, p.w_step, cin);
  }
  store_sums<V, M, NC>(acc, p.y + ow * p.y_step, p.y_step);
}

// One position, taps [kw0, kw1): NC accumulators alone would be one chain
// of dependent FMAs each (a border position cost about a whole tile), so
// consecutive taps go to 4 partial sums in turn, added at the end (tap by
// tap whatever the layout: the same bits for a view and its copy).
template <class V, int NC>
void f32_conv_small_cout_single(const volconv::cpu::DwconvParams& p, std::int64_t ow, std::int64_t kw0,
                                std::int64_t kw1) {
  using Reg = typename V::V;
  constexpr int L = V::L;
  const std::int64_t xs = p.x_step, cin = p.cin, dw = p.dilation * xs;
  Reg acc[4][NC];
  zero_tile<V, 4, NC>(acc);
  auto tap = [&](auto part, const float* x, const float* w) {
    constexpr int j = decltype(part)::value;
    std::int64_t k = 0;
    for (; k + L <= cin; k += L)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[j][c] = V::fma(V::load(x + k), V::load(w + c * p.w_step + k), acc[j][c]);
    if (k < cin) {
      const int n = int(cin - k);
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c)
        acc[j][c] = V::fma(V::load_partial(x + k, n), V::load_partial(w + c * p.w_step + k, n), acc[j][c]);
    }
  };
  unsigned t = 0;
  for (std::int64_t q = 0; q < p.rows; ++q) {
    const float* x = p.x[q] + (ow * p.stride - p.pad + kw0 * p.dilation) * xs;
    const float* w = p.w[q] + kw0 * cin;
    for (std::int64_t kw = kw0; kw < kw1; ++kw, x += dw, w += cin) {
      switch (t++ & 3u) {
        case 0: tap(std::integral_constant<int, 0>{}, x, w); break;
        case 1: tap(std::integral_constant<int, 1>{}, x, w); break;
        case 2: tap(std::integral_constant<int, 2>{}, x, w); break;
        default: tap(std::integral_constant<int, 3>{}, x, w);
      }
    }
  }
  // (every ISA's register type is a GCC/Clang vector: + adds lane-wise)
  Reg sum[1][NC];
#pragma GCC unroll 4
  for (int c = 0; c < NC; ++c) sum[0][c] = (acc[0][c] + acc[1][c]) + (acc[2][c] + acc[3][c]);
  store_sums<V, 1, NC>(sum, p.y + ow * p.y_step, p.y_step);
}

// Interior tiles of MR positions, then MR / 2 and 2, single positions for
// the rest and for the W borders (their taps inside the input only).
template <class V, int MR, int NC>
void f32_conv_small_cout(const volconv::cpu::DwconvParams& p) {
  const RowInterior interior = row_interior(p);
  const std::int64_t lo = interior.lo, hi = interior.hi;
  auto single = [&](std::int64_t ow, std::int64_t kw0, std::int64_t kw1) {
    f32_conv_small_cout_single<V, NC>(p, ow, kw0, kw1);
  };
  row_borders(p, 0, lo, single);
  std::int64_t ow = lo;
  for (; ow + MR <= hi; ow += MR) f32_conv_small_cout_tile<V, MR, NC>(p, ow, 0, p.kw);
  if constexpr (MR / 2 > 2)
    if (ow + MR / 2 <= hi) f32_conv_small_cout_tile<V, MR / 2, NC>(p, ow, 0, p.kw), ow += MR / 2;
  if constexpr (MR > 2)
    if (ow + 2 <= hi) f32_conv_small_cout_tile<V, 2, NC>(p, ow, 0, p.kw), ow += 2;
  for (; ow < hi; ++ow) single(ow, 0, p.kw);
  row_borders(p, hi, p.wo, single);
}

}  // namespace
