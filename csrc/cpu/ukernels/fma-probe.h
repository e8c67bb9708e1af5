// The FMA peak probe: independent multiply-add chains per thread (enough to
// cover FMA latency x throughput on every CPU we target: 4-cycle latency x 2
// pipes needs 8) and nothing else in the loop, so the rate it measures is
// the ceiling the GEMM kernels are compared against. Each chain starts from
// its own value: identical chains are folded into one by the compiler (the
// first probe measured a single latency-bound chain and read low).
#pragma once

#include <cstdint>

namespace {

template <class V, int kChains = 12>
double fma_probe(std::int64_t iters) {
  using Reg = typename V::V;
  const float one = 1.0f, tiny = 1e-7f;
  const Reg m = V::broadcast(&one), add = V::broadcast(&tiny);
  Reg acc[kChains];
#pragma GCC unroll 32
  for (int j = 0; j < kChains; ++j) {
    const float start = float(j) * 0.125f;
    acc[j] = V::broadcast(&start);
  }
  for (std::int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 32
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
