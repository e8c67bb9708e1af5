// The machine's measured FMA peak, for the benchmark's "% of peak" column:
// every pool thread runs the active ISA's probe at once (all cores busy, as
// in a conv), after a warm-up round that lets clocks settle; each round runs
// ~50 ms per thread, best of 7.
#include <algorithm>
#include <atomic>
#include <chrono>

#include "cpu_features.h"
#include "thread_pool.h"
#include "volconv/cpu.h"

namespace volconv::cpu {

double measured_peak_gflops(bool bf16) {
  const KernelTable& kt = active_kernels();
  double (*probe)(std::int64_t) = bf16 ? kt.bf16_probe : kt.fma_probe;
  if (probe == nullptr) return 0.0;
  const int threads = get_num_threads();
  auto round = [&](std::int64_t iters) {
    std::atomic<double> flops{0.0};
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, [&](std::int64_t b, std::int64_t e) {
      double mine = 0.0;
      for (std::int64_t i = b; i < e; ++i) mine += probe(iters);
      double cur = flops.load();
      while (!flops.compare_exchange_weak(cur, cur + mine)) {
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(flops.load() / s, s);
  };
  // Size a round to ~50 ms from a short warm-up one.
  const std::int64_t warm_iters = 200'000;
  const auto [rate, secs] = round(warm_iters);
  (void)rate;
  const std::int64_t iters = std::max<std::int64_t>(warm_iters, std::int64_t(warm_iters * 0.05 / std::max(secs, 1e-6)));
  round(iters);  // warm-up at full length
  double best = 0.0;
  for (int rep = 0; rep < 7; ++rep) best = std::max(best, round(iters).first / 1e9);
  return best;
}

}  // namespace volconv::cpu
