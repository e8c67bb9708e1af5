// One thread's FMA rate at two vector widths, for picking a tile set: a
// core with two 512-bit FMA pipes does twice the flops per cycle at 512 bits
// as at 256; a core that splits a 512-bit FMA over its 256-bit pipes (Zen 4),
// or fuses two 256-bit pipes into one 512-bit one (Intel parts with one
// 512-bit unit), does the same flops at both widths. The probes alternate,
// best of several rounds, so a preempted round or the first 512-bit
// instructions' slow start (Intel powers the upper lanes up on first use) do
// not count.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "ukernel.h"

namespace {

inline volconv::cpu::FmaRates measure_fma_rates(double (*wide)(std::int64_t), double (*narrow)(std::int64_t)) {
  using clock = std::chrono::steady_clock;
  auto rate = [](double (*probe)(std::int64_t), std::int64_t iters) {
    const auto t0 = clock::now();
    const double flops = probe(iters);
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    return flops / std::max(s, 1e-9) / 1e9;
  };
  // ~0.1 ms per round at 3 GHz: 7 rounds of each cost ~1.5 ms, once per process.
  constexpr std::int64_t kIters = 12'000;
  volconv::cpu::FmaRates r{0.0, 0.0};
  rate(wide, kIters);
  for (int round = 0; round < 7; ++round) {
    r.wide_gflops = std::max(r.wide_gflops, rate(wide, kIters));
    r.narrow_gflops = std::max(r.narrow_gflops, rate(narrow, kIters));
  }
  return r;
}

}  // namespace
