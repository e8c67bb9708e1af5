// The CPU backend's platform interface (csrc/cpu/platform.h): the sysfs and
// sysctl parsers against fake sources written here (the macOS logic runs on
// Linux through a fake sysctl), and the live answers against what the OS
// says through other means.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <unistd.h>

#if defined(__linux__)
#include <sched.h>
#endif

#include "../../csrc/cpu/platform.h"
#include "check.h"

using namespace volconv::cpu::platform;
namespace fs = std::filesystem;

namespace {

void test_parse_size() {
  CHECK_EQ(parse_size("32K"), 32 << 10);
  CHECK_EQ(parse_size("1024K\n"), 1 << 20);
  CHECK_EQ(parse_size("12M"), 12 << 20);
  CHECK_EQ(parse_size("4194304"), 4 << 20);
  CHECK_EQ(parse_size(""), 0);
  CHECK_EQ(parse_size("K"), 0);
  CHECK_EQ(parse_size("32KB"), 0);
  CHECK_EQ(parse_size("-1"), 0);
}

void test_cpu_list() {
  CHECK_EQ(count_cpu_list("0"), 1);
  CHECK_EQ(count_cpu_list("0-1"), 2);
  CHECK_EQ(count_cpu_list("0-3,8,10-11\n"), 7);
  CHECK_EQ(count_cpu_list(""), 0);
  CHECK_EQ(count_cpu_list("3-1"), 0);
  CHECK_EQ(count_cpu_list("a"), 0);
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text << "\n";
}

// A Zen-like cpu0: split L1, a private L2, an L3 shared by 16 CPUs.
void test_sysfs() {
  const fs::path root = fs::temp_directory_path() / ("volconv_sysfs_" + std::to_string(::getpid()));
  fs::remove_all(root);
  const fs::path cache = root / "cpu0" / "cache";
  const char* entries[][4] = {{"1", "Data", "48K", "0,8"},
                              {"1", "Instruction", "32K", "0,8"},
                              {"2", "Unified", "1024K", "0,8"},
                              {"3", "Unified", "32768K", "0-7,8-15"}};
  for (int i = 0; i < 4; ++i) {
    const fs::path d = cache / ("index" + std::to_string(i));
    write(d / "level", entries[i][0]);
    write(d / "type", entries[i][1]);
    write(d / "size", entries[i][2]);
    write(d / "shared_cpu_list", entries[i][3]);
  }
  const CacheSizes c = cache_sizes_from_sysfs(root.string());
  CHECK_EQ(c.l1d, 48 << 10);  // the instruction cache is not the data cache
  CHECK_EQ(c.l2, 1 << 20);
  CHECK_EQ(c.l3, (32 << 20) / 16);
  const CacheSizes none = cache_sizes_from_sysfs((root / "missing").string());
  CHECK(none.l1d == 0 && none.l2 == 0 && none.l3 == 0);
  fs::remove_all(root);
}

SysctlInt fake(std::map<std::string, std::int64_t> values) {
  return [values](const char* name) {
    const auto it = values.find(name);
    return it == values.end() ? std::int64_t(-1) : it->second;
  };
}

// Apple silicon (an M1-like chip: 4 performance cores sharing a 12 MiB L2,
// 4 efficiency cores) and an Intel Mac (no perflevels).
void test_sysctl() {
  const SysctlInt m1 = fake({{"hw.physicalcpu", 8},
                             {"hw.perflevel0.physicalcpu", 4},
                             {"hw.perflevel1.physicalcpu", 4},
                             {"hw.perflevel0.l1dcachesize", 128 << 10},
                             {"hw.perflevel0.l2cachesize", 12 << 20},
                             {"hw.perflevel0.cpusperl2", 4},
                             {"hw.l2cachesize", 4 << 20}});
  CHECK_EQ(performance_cores(m1), 4);
  const CacheSizes a = cache_sizes_from_sysctl(m1);
  CHECK_EQ(a.l1d, 128 << 10);
  CHECK_EQ(a.l2, 3 << 20);
  CHECK_EQ(a.l3, 0);
  const SysctlInt intel = fake({{"hw.physicalcpu", 6},
                                {"hw.l1dcachesize", 32 << 10},
                                {"hw.l2cachesize", 256 << 10},
                                {"hw.l3cachesize", 12 << 20}});
  CHECK_EQ(performance_cores(intel), 6);
  const CacheSizes b = cache_sizes_from_sysctl(intel);
  CHECK(b.l1d == 32 << 10 && b.l2 == 256 << 10 && b.l3 == 12 << 20);
  CHECK_EQ(performance_cores(fake({})), 0);
}

void test_live() {
  const CacheSizes c = cache_sizes();
  CHECK(c.l1d > 0 && c.l2 > 0 && c.l3 > 0);  // detected or the fallback, never 0
#if defined(__x86_64__) || defined(__i386__)
  CHECK(has_streaming_stores());
#else
  CHECK(!has_streaming_stores());
#endif
#if defined(__linux__)
  cpu_set_t set;
  CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
  CHECK_EQ(available_cpus(), CPU_COUNT(&set));
#else
  CHECK(available_cpus() >= 1);
#endif
}

}  // namespace

int main() {
  test_parse_size();
  test_cpu_list();
  test_sysfs();
  test_sysctl();
  test_live();
  return check::result("test_cpu_platform");
}
