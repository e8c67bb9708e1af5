// Runtime ISA detection. Every kernel set is compiled into the one binary;
// this picks the best the CPU (and OS) supports, so a wheel built on any
// machine uses AVX-512 where it exists and still runs where it does not.
#include "cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../core/fork_safe_mutex.h"
#include "volconv/cpu.h"

namespace volconv::cpu {

// The x86 kernel sets come from one list (VOLCONV_X86_ISAS in
// CMakeLists.txt): the features each unit is compiled for are the features
// the CPU must have, word for word. Each unit also reports what its compiler
// enabled (ukernels/isa_features.cpp).
#define VOLCONV_X86_ISA(name, features) const char* compiled_features_##name();
#include "isa_table.inc"
#undef VOLCONV_X86_ISA

namespace {

struct Candidate {
  const char* name;
  const KernelTable* (*table)();
  const char* features;                // nullptr: the table getter itself says (nullptr when absent)
  const char* (*compiled_features)();  // x86 sets: what the compiler enabled for the unit
  // Another tile set of the set named `base` (same unit, same features):
  // supported where the base is; picked by default only when two_fma is set
  // and the machine's FMA rates ask for it (prefers_two_fma_tiles).
  const char* base = nullptr;
  bool two_fma = false;
};

// One feature word of the list; a word without a check here is never
// supported, so a set naming it is never picked.
bool cpu_has(std::string_view feature) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the vector state;
  // it takes only literals, hence the chain.
  if (feature == "fma") return __builtin_cpu_supports("fma");
  if (feature == "f16c") return __builtin_cpu_supports("f16c");
  if (feature == "avx2") return __builtin_cpu_supports("avx2");
  if (feature == "avx512f") return __builtin_cpu_supports("avx512f");
  if (feature == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (feature == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (feature == "avx512dq") return __builtin_cpu_supports("avx512dq");
  if (feature == "avx512bf16") return __builtin_cpu_supports("avx512bf16");
#endif
  (void)feature;
  return false;
}

bool cpu_has_all(std::string_view words) {
  while (!words.empty()) {
    const std::size_t end = std::min(words.find(' '), words.size());
    if (end > 0 && !cpu_has(words.substr(0, end))) return false;
    words.remove_prefix(std::min(end + 1, words.size()));
  }
  return true;
}

// Best first. The CPU is asked before the table getter runs: a getter is
// compiled for its own ISA, and even building its static table may use that
// ISA's instructions (a 512-bit copy), so calling it on a CPU without the ISA
// is an illegal instruction.
#define VOLCONV_X86_ISA(name, features) {#name, kernels_##name, features, compiled_features_##name},
const Candidate kCandidates[] = {
#include "isa_table.inc"
    {"neon", kernels_neon, nullptr, nullptr},
    {"generic", kernels_generic, "", nullptr},
    {"avx512bf16-2fma", kernels_avx512bf16_2fma, nullptr, nullptr, "avx512bf16", true},
    {"avx512f-2fma", kernels_avx512f_2fma, nullptr, nullptr, "avx512f", true},
};
#undef VOLCONV_X86_ISA

const Candidate* named(std::string_view name) {
  for (const Candidate& c : kCandidates)
    if (name == c.name) return &c;
  return nullptr;
}

bool supported(const Candidate& c) {
  if (c.base != nullptr) {
    const Candidate* base = named(c.base);
    return base != nullptr && supported(*base) && c.table() != nullptr;
  }
  if (c.features == nullptr) return c.table() != nullptr;
  return cpu_has_all(c.features) && c.table() != nullptr;
}

const Candidate* find(const std::string& name) {
  const Candidate* c = named(name);
  return c != nullptr && supported(*c) ? c : nullptr;
}

// Measured once, and only on a CPU with AVX-512 (the probe's unit needs it).
const FmaRates& machine_rates() {
  static const FmaRates rates = [] {
    const Candidate* avx512f = named("avx512f");
    return avx512f != nullptr && supported(*avx512f) ? measure_fma_rates_avx512f() : FmaRates{0.0, 0.0};
  }();
  return rates;
}

// The sets the CPU runs, best first: each unit's two tile sets together, the
// one its FMA pipes ask for first.
std::vector<const Candidate*> ranked() {
  std::vector<const Candidate*> out;
  for (const Candidate& c : kCandidates) {
    if (c.base != nullptr || !supported(c)) continue;
    const Candidate* two = nullptr;
    for (const Candidate& v : kCandidates)
      if (v.two_fma && v.base != nullptr && std::string_view(v.base) == c.name && supported(v)) two = &v;
    const bool two_first = two != nullptr && prefers_two_fma_tiles(machine_rates());
    if (two_first) out.push_back(two);
    out.push_back(&c);
    if (two != nullptr && !two_first) out.push_back(two);
  }
  return out;
}

const Candidate* best() {
  const std::vector<const Candidate*> r = ranked();
  return r.empty() ? named("generic") : r.front();
}

std::atomic<const KernelTable*> g_active{nullptr};
detail::ForkSafeMutex g_mutex;

const Candidate* from_env() {
  const char* env = std::getenv("VOLCONV_CPU_ISA");
  if (env == nullptr || *env == '\0') return best();
  const Candidate* c = find(env);
  if (c == nullptr)
    throw std::invalid_argument(std::string("[conv3d] VOLCONV_CPU_ISA=") + env +
                                " names a kernel set this CPU cannot run.");
  return c;
}

}  // namespace

const KernelTable& active_kernels() {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t == nullptr) {
    std::lock_guard<detail::ForkSafeMutex> lock(g_mutex);
    t = g_active.load();
    if (t == nullptr) {
      t = from_env()->table();
      g_active.store(t, std::memory_order_release);
    }
  }
  return *t;
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (const Candidate* c : ranked()) out.push_back(c->name);
  return out;
}

std::string active_isa() { return active_kernels().isa; }

void force_isa(const std::string& name) {
  std::lock_guard<detail::ForkSafeMutex> lock(g_mutex);
  if (name.empty()) {
    g_active.store(from_env()->table());
    return;
  }
  const Candidate* c = find(name);
  if (c == nullptr) throw std::invalid_argument("[force_isa] This CPU cannot run the '" + name + "' kernels.");
  g_active.store(c->table());
}

bool prefers_two_fma_tiles(const FmaRates& rates) {
  return rates.narrow_gflops > 0.0 && rates.wide_gflops >= kTwoFmaMinRatio * rates.narrow_gflops;
}

namespace testing {
FmaRates machine_fma_rates() { return machine_rates(); }

std::vector<IsaEntry> isa_table() {
  std::vector<IsaEntry> out;
  for (const Candidate& c : kCandidates)
    if (c.compiled_features != nullptr) out.push_back({c.name, c.features, c.compiled_features()});
  return out;
}
}  // namespace testing

}  // namespace volconv::cpu
