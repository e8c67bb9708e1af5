// Which GEMM a bf16 weight gradient takes. vdpbf16ps does two multiply-adds
// per lane, but its rate differs by CPU: on the Sapphire Rapids-class Xeon
// of the device it ran at half the float32 FMA rate (74 against 151 GFLOP/s
// on one core, ukernels' probes) and the float32 loops were faster (shape a,
// 16 threads: 26.5 against 17.9 ms); where vdpbf16ps issues as often as an
// FMA (Zen 4's 512-bit ops are expected to; not measured here) it does
// twice the work. So the dot GEMM is taken where its measured flop rate
// beats the FMA rate by a margin.
#include <algorithm>
#include <atomic>
#include <chrono>

#include "cpu_features.h"
#include "volconv/cpu.h"
#include "wgrad_bf16_dot.h"

namespace volconv::cpu {
namespace {

std::atomic<testing::Bf16DotMode> g_mode{testing::Bf16DotMode::automatic};

// The two CPU kinds above are 2x apart on either side of 1: a margin keeps a
// noisy measurement from flipping the choice (and with it the result's bits).
constexpr double kDotMinSpeedRatio = 1.25;

// Flops per second of one run of a probe (a few tens of microseconds).
double probe_rate(double (*probe)(std::int64_t)) {
  const auto t0 = std::chrono::steady_clock::now();
  const double flops = probe(4000);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return flops / std::max(s, 1e-9);
}

// Best of 7 interleaved runs of each probe (the first ones warm the vector
// units up; a preempted run is discarded by the best-of): about 1 ms once.
double measure_ratio(const KernelTable& kt) {
  if (kt.bf16_probe == nullptr || kt.fma_probe == nullptr) return 0.0;
  double dot = 0.0, fma = 0.0;
  for (int round = 0; round < 7; ++round) {
    dot = std::max(dot, probe_rate(kt.bf16_probe));
    fma = std::max(fma, probe_rate(kt.fma_probe));
  }
  return fma > 0.0 ? dot / fma : 0.0;
}

// The active set is one of the avx512bf16 unit's (its own tiles or -2fma).
bool bf16_unit_active() { return active_isa().rfind("avx512bf16", 0) == 0; }

}  // namespace

double bf16_dot_speed_ratio() {
  if (!bf16_unit_active()) return 0.0;
  static const double ratio = measure_ratio(active_kernels());
  return ratio;
}

const WgradBf16Kernel* wgrad_bf16_dot_active() {
  const testing::Bf16DotMode mode = g_mode.load();
  if (mode == testing::Bf16DotMode::emulated) return &wgrad_bf16_dot_emulated();
#if defined(VOLCONV_WGRAD_AVX512BF16)
  if (bf16_unit_active() &&
      (mode == testing::Bf16DotMode::hardware || bf16_dot_speed_ratio() >= kDotMinSpeedRatio))
    return &wgrad_bf16_dot_avx512bf16();
#endif
  return nullptr;
}

namespace testing {
namespace {
std::atomic<const char*> g_last_wgrad_kernel{""};
}
const char* last_wgrad_kernel() { return g_last_wgrad_kernel.load(); }
void set_last_wgrad_kernel(const char* name) { g_last_wgrad_kernel.store(name); }
void set_bf16_dot_mode(Bf16DotMode mode) { g_mode.store(mode); }
}  // namespace testing

}  // namespace volconv::cpu
