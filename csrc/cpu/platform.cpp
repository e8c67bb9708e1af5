#include "platform.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

namespace volconv::cpu::platform {

std::int64_t parse_size(const std::string& text) {
  std::size_t i = 0;
  std::int64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (v > (std::int64_t(1) << 40)) return 0;
    v = v * 10 + (text[i++] - '0');
  }
  if (i == 0) return 0;
  std::int64_t scale = 1;
  if (i < text.size()) {
    switch (text[i]) {
      case 'K': case 'k': scale = 1 << 10; ++i; break;
      case 'M': case 'm': scale = 1 << 20; ++i; break;
      case 'G': case 'g': scale = 1 << 30; ++i; break;
      default: break;
    }
  }
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  return i == text.size() ? v * scale : 0;
}

int count_cpu_list(const std::string& list) {
  int n = 0;
  std::size_t begin = 0;
  while (begin < list.size()) {
    const std::size_t comma = std::min(list.find(',', begin), list.size());
    std::string part = list.substr(begin, comma - begin);
    begin = comma + 1;
    while (!part.empty() && std::isspace(static_cast<unsigned char>(part.back()))) part.pop_back();
    if (part.empty()) return 0;
    char* end = nullptr;
    const long lo = std::strtol(part.c_str(), &end, 10);
    if (end == part.c_str()) return 0;
    long hi = lo;
    if (*end == '-') {
      const char* start = end + 1;
      hi = std::strtol(start, &end, 10);
      if (end == start) return 0;
    }
    if (*end != '\0' || hi < lo || lo < 0) return 0;
    n += int(hi - lo + 1);
  }
  return n;
}

namespace {

// stdio rather than iostreams: see csrc/core/format.h.
bool read_line(const std::string& path, std::string& line) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  char buf[256];
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!ok) return false;
  line = buf;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return true;
}

}  // namespace

CacheSizes cache_sizes_from_sysfs(const std::string& cpu_dir) {
  CacheSizes c;
  for (int index = 0; index < 16; ++index) {
    const std::string dir = cpu_dir + "/cpu0/cache/index" + std::to_string(index) + "/";
    std::string level, type, size, shared;
    if (!read_line(dir + "level", level)) break;
    if (!read_line(dir + "type", type) || !read_line(dir + "size", size) || type == "Instruction") continue;
    std::int64_t bytes = parse_size(size);
    if (level == "1") c.l1d = bytes;
    if (level == "2") c.l2 = bytes;
    if (level == "3") {
      const int sharing = read_line(dir + "shared_cpu_list", shared) ? count_cpu_list(shared) : 0;
      c.l3 = sharing > 1 ? bytes / sharing : bytes;
    }
  }
  return c;
}

int performance_cores(const SysctlInt& sysctl) {
  for (const char* name : {"hw.perflevel0.physicalcpu", "hw.physicalcpu"}) {
    const std::int64_t n = sysctl(name);
    if (n > 0) return int(n);
  }
  return 0;
}

CacheSizes cache_sizes_from_sysctl(const SysctlInt& sysctl) {
  CacheSizes c;
  const auto positive = [](std::int64_t v) { return v > 0 ? v : 0; };
  if (sysctl("hw.perflevel0.l2cachesize") > 0) {
    // Apple silicon: a cluster of performance cores shares one L2.
    const std::int64_t per_l2 = sysctl("hw.perflevel0.cpusperl2");
    c.l1d = positive(sysctl("hw.perflevel0.l1dcachesize"));
    c.l2 = sysctl("hw.perflevel0.l2cachesize") / (per_l2 > 1 ? per_l2 : 1);
    c.l3 = positive(sysctl("hw.perflevel0.l3cachesize"));
    return c;
  }
  c.l1d = positive(sysctl("hw.l1dcachesize"));
  c.l2 = positive(sysctl("hw.l2cachesize"));
  c.l3 = positive(sysctl("hw.l3cachesize"));
  return c;
}

namespace {

#if defined(__APPLE__)
std::int64_t real_sysctl(const char* name) {
  std::int64_t v64 = 0;
  std::size_t size = sizeof v64;
  if (sysctlbyname(name, &v64, &size, nullptr, 0) != 0) return -1;
  if (size == sizeof(std::int32_t)) {  // some hw.* values are 32-bit
    std::int32_t v32;
    std::memcpy(&v32, &v64, sizeof v32);
    return v32;
  }
  return size == sizeof v64 ? v64 : -1;
}
#endif

CacheSizes detect_caches() {
#if defined(__APPLE__)
  CacheSizes c = cache_sizes_from_sysctl(real_sysctl);
#elif defined(__linux__)
  CacheSizes c = cache_sizes_from_sysfs("/sys/devices/system/cpu");
#else
  CacheSizes c;
#endif
  if (c.l1d <= 0) c.l1d = kFallbackCaches.l1d;
  if (c.l2 <= 0) c.l2 = kFallbackCaches.l2;
  if (c.l3 <= 0) c.l3 = kFallbackCaches.l3;
  return c;
}

}  // namespace

CacheSizes cache_sizes() {
  static const CacheSizes sizes = detect_caches();
  return sizes;
}

int available_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#elif defined(__APPLE__)
  if (const int n = performance_cores(real_sysctl)) return n;
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? int(n) : 1;
}

}  // namespace volconv::cpu::platform
