// The inner loops of the weight gradient (conv_grad_weight.cpp), written once
// on the micro-kernels' vector traits (float) or as plain C++ (double), and
// compiled per ISA (wgrad_gemm_generic.cpp at the baseline,
// wgrad_gemm_avx2.cpp with AVX2+FMA) so the register tile fits each ISA's
// register file. Per-ISA kernels beyond these two (AVX-512, NEON, bf16 dot)
// are still to come.
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

struct WgradKernels {
  WgradGemm<float> gemm_f32;
  WgradGemm<double> gemm_f64;
  WgradDepthwise<float> depthwise_f32;
  WgradDepthwise<double> depthwise_f64;
};

const WgradKernels& wgrad_kernels_generic();
const WgradKernels& wgrad_kernels_avx2();  // only in x86-64 builds (VOLCONV_WGRAD_AVX2)

// Internal linkage: each ISA's file gets its own copies (a shared inline
// instantiation could resolve to the AVX2 one on a CPU without AVX2).
namespace {
namespace wgrad {

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
// vectors of accumulators, one broadcast of g and NV loads of x per p.
template <class Vec, int MR, int NV>
void gemm_rows_f32(std::int64_t np, std::int64_t i, std::int64_t n, const float* g, std::int64_t ldg,
                   const float* x, std::int64_t ldx, float* c, std::int64_t ldc) {
  using V = typename Vec::V;
  constexpr int L = Vec::L, NR = NV * L;
  std::int64_t j = 0;
  for (; j + NR <= n; j += NR) {
    V acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = Vec::load(c + (i + r) * ldc + j + v * L);
    for (std::int64_t p = 0; p < np; ++p) {
      V xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = Vec::load(x + p * ldx + j + v * L);
      for (int r = 0; r < MR; ++r) {
        const V gb = Vec::broadcast(g + p * ldg + i + r);
        for (int v = 0; v < NV; ++v) acc[r][v] = Vec::fma(gb, xv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) Vec::store(c + (i + r) * ldc + j + v * L, acc[r][v]);
  }
  for (; j < n; ++j) {
    for (int r = 0; r < MR; ++r) {
      float acc = c[(i + r) * ldc + j];
      for (std::int64_t p = 0; p < np; ++p) acc += g[p * ldg + i + r] * x[p * ldx + j];
      c[(i + r) * ldc + j] = acc;
    }
  }
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

}  // namespace wgrad
}  // namespace
}  // namespace volconv::cpu
