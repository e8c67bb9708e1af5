// What the CPU backend asks of the operating system, behind one small
// interface: how many threads to run by default, how large the caches are,
// and whether non-temporal stores exist. Linux reads its affinity mask and
// sysfs; macOS (no sched_getaffinity) asks sysctl for the performance cores
// and their caches. The parsers take their sources as arguments, so the
// macOS logic is tested on Linux with a fake sysctl.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace volconv::cpu::platform {

// Bytes of one core's share of each cache level; 0 where unknown.
struct CacheSizes {
  std::int64_t l1d = 0, l2 = 0, l3 = 0;
};

// The detected sizes (once per process), with unknown levels filled from
// kFallbackCaches so the planner always has a number.
CacheSizes cache_sizes();
constexpr CacheSizes kFallbackCaches{32 << 10, 1 << 20, 8 << 20};

// The CPUs the pool sizes itself by (its default, and the base of its cap;
// VOLCONV_NUM_THREADS is the pool's business): the CPUs of this process's
// affinity mask (Linux), the performance cores (macOS: efficiency cores would
// be the stragglers of the pool's static chunks), or
// std::thread::hardware_concurrency.
int available_cpus();

// Non-temporal (cache-bypassing) stores: x86 only. NEON's kernels store
// normally, so the planner never asks them to stream.
constexpr bool has_streaming_stores() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  return true;
#else
  return false;
#endif
}

// ---- the parsers, exposed for tests ----------------------------------------

// "48K", "1024K", "32M", "512" (sysfs cache sizes) in bytes; 0 when malformed.
std::int64_t parse_size(const std::string& text);

// Number of CPUs in a sysfs CPU list ("0-3,8,10-11"); 0 when malformed.
int count_cpu_list(const std::string& list);

// The caches of cpu0 under a sysfs CPU directory (/sys/devices/system/cpu):
// cpu0/cache/index*/ with level, type (Data / Unified; Instruction is
// skipped) and size. L1 and L2 belong to one core (SMT siblings share them)
// and count whole; the L3 counts its size over the CPUs sharing it
// (shared_cpu_list).
CacheSizes cache_sizes_from_sysfs(const std::string& cpu_dir);

// An integer sysctl by name; -1 when the name does not exist.
using SysctlInt = std::function<std::int64_t(const char* name)>;

// macOS: the performance cores (hw.perflevel0.physicalcpu, Apple silicon),
// else the physical cores (hw.physicalcpu, Intel Macs), else 0.
int performance_cores(const SysctlInt& sysctl);

// macOS: caches of a performance core (hw.perflevel0.*; L2 shared by
// hw.perflevel0.cpusperl2 cores), else the hw.l1dcachesize / hw.l2cachesize
// / hw.l3cachesize of Intel Macs.
CacheSizes cache_sizes_from_sysctl(const SysctlInt& sysctl);

}  // namespace volconv::cpu::platform
