// The inner loops of the weight gradient (conv_grad_weight.cpp), written once
// on the micro-kernels' vector traits (float) or as plain C++ (double), and
// compiled per ISA (wgrad_gemm_generic.cpp at the baseline,
// wgrad_gemm_avx2.cpp with AVX2+FMA) so the register tile fits each ISA's
// register file; wgrad_gemm_avx512.cpp with AVX-512F, wgrad_gemm_neon.cpp on
// aarch64. bf16 operands on AVX512_BF16 take the vdpbf16ps GEMM of
// wgrad_bf16_dot.h in the gathered GEMM.
#pragma once

#include <cstdint>

namespace volconv::cpu {

// c[i][j] += sum_p g[p][i] * x[p][j] for i < m, j < n (each sum in p order).
template <class A>
using WgradGemm = void (*)(std::int64_t np, std::int64_t m, std::int64_t n, const A* g, std::int64_t ldg,
                           const A* x, std::int64_t ldx, A* c, std::int64_t ldc);
// acc[c] += sum_p g[p][c] * x[p][c]: depthwise, the groups in the lanes.
template <class A>
using WgradDepthwise = void (*)(std::int64_t np, std::int64_t channels, const A* g, const A* x, A* acc);

// Depthwise weight gradient along one output row, the channels in the lanes:
//   acc[q][kw * acc_step + c] += sum over ow of g[ow][c] * x[q][iw][c],
//   iw = ow * stride - pad + kw * dilation, only where 0 <= iw < width,
// for the rows q < rows (the (kd, kh) taps whose input row exists), c < nc.
// x[q] / g point at position 0 of their rows, at the block's first channel;
// positions are x_step / g_step elements apart. pad may be negative.
template <class A>
struct DwWgradRow {
  std::int64_t rows;
  const A* const* x;
  const A* g;
  A* const* acc;
  std::int64_t kw, stride, dilation, pad, width, wo, x_step, g_step, acc_step;
  int nc;
};
template <class A>
using DwWgradRowFn = void (*)(const DwWgradRow<A>&);

struct WgradKernels {
  WgradGemm<float> gemm_f32;
  WgradGemm<double> gemm_f64;
  WgradDepthwise<float> depthwise_f32;
  WgradDepthwise<double> depthwise_f64;
  DwWgradRowFn<float> dw_row_f32;
  DwWgradRowFn<double> dw_row_f64;
  const char* name;  // "wgrad-avx2": the ISA these loops were compiled for
};

const WgradKernels& wgrad_kernels_generic();
const WgradKernels& wgrad_kernels_avx2();     // only in x86-64 builds (VOLCONV_WGRAD_AVX2)
const WgradKernels& wgrad_kernels_avx512f();  // the same (VOLCONV_WGRAD_AVX512)
const WgradKernels& wgrad_kernels_neon();     // only in aarch64 builds
// The loops for the active ISA (force_isa included).
const WgradKernels& wgrad_kernels_active();

// Internal linkage: each ISA's file gets its own copies (a shared inline
// instantiation could resolve to the AVX2 one on a CPU without AVX2).
namespace {
namespace wgrad {

// acc + 1 * partial: an add written as an FMA, the one arithmetic op every
// vector traits class has.
constexpr float kOne = 1.0f;

// MR x NR accumulators live in registers across the whole p loop.
template <class A, int MR, int NR>
void gemm_tn(std::int64_t np, std::int64_t m, std::int64_t n, const A* g, std::int64_t ldg, const A* x,
             std::int64_t ldx, A* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + MR <= m; i += MR) {
    std::int64_t j = 0;
    for (; j + NR <= n; j += NR) {
      A acc[MR][NR];
      for (int r = 0; r < MR; ++r)
        for (int q = 0; q < NR; ++q) acc[r][q] = c[(i + r) * ldc + j + q];
      for (std::int64_t p = 0; p < np; ++p) {
        const A* xr = x + p * ldx + j;
        const A* gr = g + p * ldg + i;
        for (int r = 0; r < MR; ++r) {
          const A gv = gr[r];
          for (int q = 0; q < NR; ++q) acc[r][q] += gv * xr[q];
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int q = 0; q < NR; ++q) c[(i + r) * ldc + j + q] = acc[r][q];
    }
    for (; j < n; ++j) {
      for (int r = 0; r < MR; ++r) {
        A acc = c[(i + r) * ldc + j];
        for (std::int64_t p = 0; p < np; ++p) acc += g[p * ldg + i + r] * x[p * ldx + j];
        c[(i + r) * ldc + j] = acc;
      }
    }
  }
  for (; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      A acc = c[i * ldc + j];
      for (std::int64_t p = 0; p < np; ++p) acc += g[p * ldg + i] * x[p * ldx + j];
      c[i * ldc + j] = acc;
    }
  }
}

// The float GEMM on a vector traits class (ukernels/vec-*.h): MR rows x NV
// vectors of accumulators at column j, one broadcast of g and NV loads of x per p.
// TAIL: one vector of the last `tail` (< L) columns, masked.
template <class Vec, int MR, int NV, bool TAIL = false>
void gemm_tile_f32(std::int64_t np, std::int64_t i, std::int64_t j, const float* g, std::int64_t ldg, const float* x,
                   std::int64_t ldx, float* c, std::int64_t ldc, int tail = 0) {
  static_assert(!TAIL || NV == 1, "a masked tile is one vector wide");
  using V = typename Vec::V;
  constexpr int L = Vec::L;
  // The r / v loops unrolled before GCC decides where acc lives: otherwise it
  // kept acc in registers but also stored it to the stack on every p (2x slower).
  V acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const float* a = c + (i + r) * ldc + j + v * L;
      acc[r][v] = TAIL ? Vec::load_partial(a, tail) : Vec::load(a);
    }
  for (std::int64_t p = 0; p < np; ++p) {
    V xv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const float* a = x + p * ldx + j + v * L;
      xv[v] = TAIL ? Vec::load_partial(a, tail) : Vec::load(a);
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const V gb = Vec::broadcast(g + p * ldg + i + r);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec::fma(gb, xv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      float* a = c + (i + r) * ldc + j + v * L;
      if constexpr (TAIL)
        Vec::store_partial(a, acc[r][v], tail);
      else
        Vec::store(a, acc[r][v]);
    }
}

// MR rows: NV-vector tiles, then two-vector and single-vector tiles (a wide
// tile must not leave a narrow n to narrower code), then the last columns in
// one masked vector (n < L: C_out 1..7 of the row path, a C_in of 5).
template <class Vec, int MR, int NV>
void gemm_rows_f32(std::int64_t np, std::int64_t i, std::int64_t n, const float* g, std::int64_t ldg,
                   const float* x, std::int64_t ldx, float* c, std::int64_t ldc) {
  constexpr int L = Vec::L, NR = NV * L;
  std::int64_t j = 0;
  for (; j + NR <= n; j += NR) gemm_tile_f32<Vec, MR, NV>(np, i, j, g, ldg, x, ldx, c, ldc);
  if constexpr (NV > 2)
    for (; j + 2 * L <= n; j += 2 * L) gemm_tile_f32<Vec, MR, 2>(np, i, j, g, ldg, x, ldx, c, ldc);
  if constexpr (NV > 1)
    for (; j + L <= n; j += L) gemm_tile_f32<Vec, MR, 1>(np, i, j, g, ldg, x, ldx, c, ldc);
  if (j < n) gemm_tile_f32<Vec, MR, 1, true>(np, i, j, g, ldg, x, ldx, c, ldc, int(n - j));
}

template <class Vec, int MR, int NV>
void gemm_f32(std::int64_t np, std::int64_t m, std::int64_t n, const float* g, std::int64_t ldg, const float* x,
              std::int64_t ldx, float* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + MR <= m; i += MR) gemm_rows_f32<Vec, MR, NV>(np, i, n, g, ldg, x, ldx, c, ldc);
  // Leftover rows in one narrower tile (fewer accumulators, same loads).
  static_assert(MR <= 6, "leftover rows are dispatched up to 5");
  switch (m - i) {
    case 5: gemm_rows_f32<Vec, 5, NV>(np, i, n, g, ldg, x, ldx, c, ldc); break;
    case 4: gemm_rows_f32<Vec, 4, NV>(np, i, n, g, ldg, x, ldx, c, ldc); break;
    case 3: gemm_rows_f32<Vec, 3, NV>(np, i, n, g, ldg, x, ldx, c, ldc); break;
    case 2: gemm_rows_f32<Vec, 2, NV>(np, i, n, g, ldg, x, ldx, c, ldc); break;
    case 1: gemm_rows_f32<Vec, 1, NV>(np, i, n, g, ldg, x, ldx, c, ldc); break;
    default: break;
  }
}

template <class A>
void depthwise(std::int64_t np, std::int64_t channels, const A* g, const A* x, A* acc) {
  for (std::int64_t p = 0; p < np; ++p) {
    const A* gr = g + p * channels;
    const A* xr = x + p * channels;
    for (std::int64_t c = 0; c < channels; ++c) acc[c] += gr[c] * xr[c];
  }
}

// Output positions [lo, hi) of a row whose input index at tap kw is inside
// the input (floor divisions: pad may be negative).
struct DwSpan {
  std::int64_t lo, hi;
};
inline std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
template <class A>
DwSpan dw_span(const DwWgradRow<A>& p, std::int64_t kw) {
  const std::int64_t off = p.pad - kw * p.dilation;  // iw = ow * stride - off
  std::int64_t lo = -floor_div(-off, p.stride), hi = floor_div(p.width - 1 + off, p.stride) + 1;
  lo = lo < 0 ? 0 : lo;
  hi = hi > p.wo ? p.wo : hi;
  return {lo, hi < lo ? lo : hi};
}

// One (row, kw) pair over positions [lo, hi): one accumulator vector.
template <class Vec>
void dw_wgrad_span(const DwWgradRow<float>& p, std::int64_t q, std::int64_t kw, std::int64_t lo, std::int64_t hi,
                   int c0, int n) {
  using V = typename Vec::V;
  if (lo >= hi) return;
  constexpr int L = Vec::L;
  float* a = p.acc[q] + kw * p.acc_step + c0;
  const float* x = p.x[q] + (lo * p.stride - p.pad + kw * p.dilation) * p.x_step + c0;
  const float* g = p.g + lo * p.g_step + c0;
  const std::int64_t xs = p.stride * p.x_step;
  V acc = Vec::zero();
  if (n == L) {
    for (std::int64_t ow = lo; ow < hi; ++ow, x += xs, g += p.g_step) acc = Vec::fma(Vec::load(g), Vec::load(x), acc);
    Vec::store(a, Vec::fma(acc, Vec::broadcast(&kOne), Vec::load(a)));
  } else {
    for (std::int64_t ow = lo; ow < hi; ++ow, x += xs, g += p.g_step)
      acc = Vec::fma(Vec::load_partial(g, n), Vec::load_partial(x, n), acc);
    Vec::store_partial(a, Vec::fma(acc, Vec::broadcast(&kOne), Vec::load_partial(a, n)), n);
  }
}

// R rows x KW taps of accumulators over the interior [lo, hi), where every
// tap of every row reads inside the input: one load of g feeds R * KW FMAs.
// FULL: n == L (no masks: the accumulators then stay in registers).
template <class Vec, int R, int KW, bool FULL>
void dw_wgrad_block(const DwWgradRow<float>& p, std::int64_t q0, std::int64_t lo, std::int64_t hi, int c0, int n) {
  using V = typename Vec::V;
  V acc[R][KW];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < KW; ++k) acc[r][k] = Vec::zero();
  const std::int64_t xs = p.stride * p.x_step, dx = p.dilation * p.x_step;
  const float* x[R];
  for (int r = 0; r < R; ++r) x[r] = p.x[q0 + r] + (lo * p.stride - p.pad) * p.x_step + c0;
  const float* g = p.g + lo * p.g_step + c0;
  for (std::int64_t ow = lo; ow < hi; ++ow, g += p.g_step) {
    const V gv = FULL ? Vec::load(g) : Vec::load_partial(g, n);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
      for (int k = 0; k < KW; ++k) {
        const float* xp = x[r] + k * dx;
        acc[r][k] = Vec::fma(gv, FULL ? Vec::load(xp) : Vec::load_partial(xp, n), acc[r][k]);
      }
      x[r] += xs;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < KW; ++k) {
      float* a = p.acc[q0 + r] + k * p.acc_step + c0;
      if (FULL)
        Vec::store(a, Vec::fma(acc[r][k], Vec::broadcast(&kOne), Vec::load(a)));
      else
        Vec::store_partial(a, Vec::fma(acc[r][k], Vec::broadcast(&kOne), Vec::load_partial(a, n)), n);
    }
}

// Stride 1, dilation 1, KW 3: walked by input column j instead of output
// position, so each x vector is loaded once and meets the three g vectors
// g[j + pad - k] held in registers (k = 0, 1, 2): 1 + R loads per 3R FMAs
// instead of 1 + 3R. The first two and last two columns see only the taps
// whose output position is inside [lo, hi) (hi - lo >= 2).
template <class Vec, int R, bool FULL>
void dw_wgrad_block_s1k3(const DwWgradRow<float>& p, std::int64_t q0, std::int64_t lo, std::int64_t hi, int c0,
                         int n) {
  using V = typename Vec::V;
  V acc[R][3];
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 3; ++k) acc[r][k] = Vec::zero();
  const std::int64_t xs = p.x_step;
  const float* x[R];
  for (int r = 0; r < R; ++r) x[r] = p.x[q0 + r] + (lo - p.pad) * xs + c0;
  const float* g = p.g + lo * p.g_step + c0;
  auto ld = [&](const float* a) { return FULL ? Vec::load(a) : Vec::load_partial(a, n); };
  // j = lo - pad (k 0 with g[lo]) and j + 1 (k 0 with g[lo + 1], k 1 with g[lo])
  V g2 = Vec::zero(), g1 = ld(g), g0;
  for (int r = 0; r < R; ++r) acc[r][0] = Vec::fma(g1, ld(x[r]), acc[r][0]), x[r] += xs;
  g += p.g_step;
  g0 = ld(g);
  for (int r = 0; r < R; ++r) {
    const V xv = ld(x[r]);
    acc[r][0] = Vec::fma(g0, xv, acc[r][0]);
    acc[r][1] = Vec::fma(g1, xv, acc[r][1]);
    x[r] += xs;
  }
  g2 = g1, g1 = g0;
  for (std::int64_t ow = lo + 2; ow < hi; ++ow) {
    g += p.g_step;
    g0 = ld(g);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const V xv = ld(x[r]);
      acc[r][0] = Vec::fma(g0, xv, acc[r][0]);
      acc[r][1] = Vec::fma(g1, xv, acc[r][1]);
      acc[r][2] = Vec::fma(g2, xv, acc[r][2]);
      x[r] += xs;
    }
    g2 = g1, g1 = g0;
  }
  // the last two columns: k 1, 2 with g[hi - 1], g[hi - 2]; then k 2 with g[hi - 1]
  for (int r = 0; r < R; ++r) {
    const V xv = ld(x[r]);
    acc[r][1] = Vec::fma(g1, xv, acc[r][1]);
    acc[r][2] = Vec::fma(g2, xv, acc[r][2]);
    acc[r][2] = Vec::fma(g1, ld(x[r] + xs), acc[r][2]);
  }
  for (int r = 0; r < R; ++r)
    for (int k = 0; k < 3; ++k) {
      float* a = p.acc[q0 + r] + k * p.acc_step + c0;
      if (FULL)
        Vec::store(a, Vec::fma(acc[r][k], Vec::broadcast(&kOne), Vec::load(a)));
      else
        Vec::store_partial(a, Vec::fma(acc[r][k], Vec::broadcast(&kOne), Vec::load_partial(a, n)), n);
    }
}

template <class Vec, bool FULL>
void dw_wgrad_blocks(const DwWgradRow<float>& p, std::int64_t lo, std::int64_t hi, int c0, int n) {
  std::int64_t q = 0;
  if (p.stride == 1 && p.dilation == 1 && hi - lo >= 2) {
    for (; q + 3 <= p.rows; q += 3) dw_wgrad_block_s1k3<Vec, 3, FULL>(p, q, lo, hi, c0, n);
    if (p.rows - q == 2) dw_wgrad_block_s1k3<Vec, 2, FULL>(p, q, lo, hi, c0, n);
    if (p.rows - q == 1) dw_wgrad_block_s1k3<Vec, 1, FULL>(p, q, lo, hi, c0, n);
    return;
  }
  for (; q + 3 <= p.rows; q += 3) dw_wgrad_block<Vec, 3, 3, FULL>(p, q, lo, hi, c0, n);
  if (p.rows - q == 2) dw_wgrad_block<Vec, 2, 3, FULL>(p, q, lo, hi, c0, n);
  if (p.rows - q == 1) dw_wgrad_block<Vec, 1, 3, FULL>(p, q, lo, hi, c0, n);
}

// The row kernel: per channel vector, the interior in register blocks of up
// to 3 rows (KW 3, the common kernel) and every other (row, kw) span alone.
// Each accumulator sums its positions in order from zero and is then added
// to acc once, so the result depends on nothing but the row.
template <class Vec>
void dw_wgrad_row(const DwWgradRow<float>& p) {
  constexpr int L = Vec::L;
  std::int64_t lo = 0, hi = p.wo;
  for (std::int64_t k = 0; k < p.kw; ++k) {
    const DwSpan s = dw_span(p, k);
    lo = s.lo > lo ? s.lo : lo;
    hi = s.hi < hi ? s.hi : hi;
  }
  const bool blocked = p.kw == 3 && lo < hi;
  for (int c0 = 0; c0 < p.nc; c0 += L) {
    const int n = p.nc - c0 < L ? p.nc - c0 : L;
    for (std::int64_t q = 0; q < p.rows; ++q)
      for (std::int64_t k = 0; k < p.kw; ++k) {
        const DwSpan s = dw_span(p, k);
        if (!blocked) {
          dw_wgrad_span<Vec>(p, q, k, s.lo, s.hi, c0, n);
        } else {
          dw_wgrad_span<Vec>(p, q, k, s.lo, lo, c0, n);
          dw_wgrad_span<Vec>(p, q, k, hi, s.hi, c0, n);
        }
      }
    if (!blocked) continue;
    n == L ? dw_wgrad_blocks<Vec, true>(p, lo, hi, c0, n) : dw_wgrad_blocks<Vec, false>(p, lo, hi, c0, n);
  }
}

// float64: plain loops (the baseline's vectors), the same spans and order.
inline void dw_wgrad_row_f64(const DwWgradRow<double>& p) {
  for (std::int64_t q = 0; q < p.rows; ++q)
    for (std::int64_t k = 0; k < p.kw; ++k) {
      const DwSpan s = dw_span(p, k);
      if (s.lo >= s.hi) continue;
      double* a = p.acc[q] + k * p.acc_step;
      for (int c = 0; c < p.nc; ++c) {
        const double* x = p.x[q] + (s.lo * p.stride - p.pad + k * p.dilation) * p.x_step + c;
        const double* g = p.g + s.lo * p.g_step + c;
        double acc = 0.0;
        for (std::int64_t ow = s.lo; ow < s.hi; ++ow, x += p.stride * p.x_step, g += p.g_step) acc += *g * *x;
        a[c] += acc;
      }
    }
}

}  // namespace wgrad
}  // namespace
}  // namespace volconv::cpu
