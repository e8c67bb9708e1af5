// The FMA peak probe: 12 independent multiply-add chains per thread, enough
// to cover the FMA latency x throughput of every CPU we target, and nothing
// else in the loop (no loads), so the rate it measures is the ceiling the
// GEMM kernels are compared against.
#pragma once

#include <cstdint>

namespace {

template <class V>
double fma_probe(std::int64_t iters) {
  using Reg = typename V::V;
  constexpr int kChains = 12;
  const float one = 1.0f, tiny = 1e-7f;
  const Reg m = V::broadcast(&one), add = V::broadcast(&tiny);
  Reg acc[kChains];
#pragma GCC unroll 16
  for (int j = 0; j < kChains; ++j) acc[j] = V::zero();
  for (std::int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < kChains; ++j) acc[j] = V::fma(acc[j], m, add);
  }
  float sink[64];
  Reg total = acc[0];
  for (int j = 1; j < kChains; ++j) total = V::fma(acc[j], m, total);
  V::store(sink, total);
  volatile float keep = sink[0];
  (void)keep;
  return double(iters) * kChains * V::L * 2.0;
}

}  // namespace
