// Runtime ISA detection. Every kernel set is compiled into the one binary;
// this picks the best the CPU (and OS) supports, so a wheel built on any
// machine uses AVX-512 where it exists and still runs where it does not.
#include "cpu_features.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iterator>
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
};
#undef VOLCONV_X86_ISA

bool supported(const Candidate& c) {
  if (c.features == nullptr) return c.table() != nullptr;
  return cpu_has_all(c.features) && c.table() != nullptr;
}

const Candidate* find(const std::string& name) {
  for (const Candidate& c : kCandidates)
    if (name == c.name && supported(c)) return &c;
  return nullptr;
}

const Candidate* best() {
  for (const Candidate& c : kCandidates)
    if (supported(c)) return &c;
  return &kCandidates[std::size(kCandidates) - 1];
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
    if (supported(c)) out.push_back(c.name);
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

namespace testing {
std::vector<IsaEntry> isa_table() {
  std::vector<IsaEntry> out;
  for (const Candidate& c : kCandidates)
    if (c.compiled_features != nullptr) out.push_back({c.name, c.features, c.compiled_features()});
  return out;
}
}  // namespace testing

}  // namespace volconv::cpu
