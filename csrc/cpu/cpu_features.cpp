// Runtime ISA detection. Every kernel set is compiled into the one binary;
// this picks the best the CPU (and OS) supports, so a wheel built on any
// machine uses AVX-512 where it exists and still runs where it does not.
#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/fork_safe_mutex.h"
#include "volconv/cpu.h"

namespace volconv::cpu {
namespace {

struct Candidate {
  const char* name;
  const KernelTable* (*table)();
  bool (*supported)();
};

bool cpu_has(const char* feature) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the vector state.
  if (std::string(feature) == "avx512bf16")
    return cpu_has("avx512f") && __builtin_cpu_supports("avx512bf16");
  if (std::string(feature) == "avx512f")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (std::string(feature) == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
  (void)feature;
  return false;
}

// Best first. The CPU is asked before the table getter runs: a getter is
// compiled for its own ISA, and even building its static table may use that
// ISA's instructions (a 512-bit copy), so calling it on a CPU without the ISA
// is an illegal instruction.
const Candidate kCandidates[] = {
    {"avx512bf16", kernels_avx512bf16, [] { return cpu_has("avx512bf16") && kernels_avx512bf16(); }},
    {"avx512f", kernels_avx512f, [] { return cpu_has("avx512f") && kernels_avx512f(); }},
    {"avx2", kernels_avx2, [] { return cpu_has("avx2") && kernels_avx2(); }},
    {"neon", kernels_neon, [] { return kernels_neon() != nullptr; }},
    {"generic", kernels_generic, [] { return true; }},
};

const Candidate* find(const std::string& name) {
  for (const Candidate& c : kCandidates)
    if (name == c.name && c.supported()) return &c;
  return nullptr;
}

const Candidate* best() {
  for (const Candidate& c : kCandidates)
    if (c.supported()) return &c;
  return &kCandidates[4];
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
  for (const Candidate& c : kCandidates)
    if (c.supported()) out.push_back(c.name);
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

}  // namespace volconv::cpu
