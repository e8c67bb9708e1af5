// The machine's measured FMA peak, for the benchmark's "% of peak" column:
// every pool thread runs the active ISA's probe at once; best of 5.
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
  constexpr std::int64_t kIters = 10'000'000;
  double best = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    std::atomic<double> flops{0.0};
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, [&](std::int64_t b, std::int64_t e) {
      double mine = 0.0;
      for (std::int64_t i = b; i < e; ++i) mine += probe(kIters);
      double cur = flops.load();
      while (!flops.compare_exchange_weak(cur, cur + mine)) {
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops.load() / s / 1e9);
  }
  return best;
}

}  // namespace volconv::cpu
