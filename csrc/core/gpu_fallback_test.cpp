// The GPU fallback policy (gpu_fallback.h) without a GPU: fake backends that
// throw what the Metal host throws. Run by tests/test_metal_host.py.
#include "gpu_fallback.h"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "volconv/device.h"

namespace {

int failures = 0;
std::vector<std::string> warnings;

void check(bool ok, const char* what) {
  if (!ok) {
    std::printf("FAILED: %s\n", what);
    ++failures;
  }
}

void record(const char* message) { warnings.emplace_back(message); }

}  // namespace

int main() {
  using volconv::detail::GpuFallback;
  using volconv::detail::GpuUnusable;
  volconv::set_warning_handler(record);

  {  // A working GPU runs; the CPU does not; nothing is said.
    GpuFallback f;
    int gpu = 0, cpu = 0;
    f.run([&] { ++gpu; }, [&] { ++cpu; });
    check(gpu == 1 && cpu == 0 && warnings.empty(), "a working GPU runs alone, silently");
  }
  {  // An unusable GPU: the CPU runs, one warning with the reason, only once.
    GpuFallback f;
    int cpu = 0;
    for (int i = 0; i < 3; ++i) f.run([] { throw GpuUnusable("[volconv] library failed: line 7"); }, [&] { ++cpu; });
    check(cpu == 3, "every call falls back to the CPU");
    check(warnings.size() == 1, "one warning for three fallbacks");
    check(!warnings.empty() && warnings[0].find("runs on the CPU") != std::string::npos &&
              warnings[0].find("[volconv] library failed: line 7") != std::string::npos,
          "the warning says what happens and why");
  }
  {  // Other errors are the caller's: no fallback, no warning.
    warnings.clear();
    GpuFallback f;
    int cpu = 0;
    bool thrown = false;
    try {
      f.run([] { throw std::invalid_argument("[conv3d] bad shape"); }, [&] { ++cpu; });
    } catch (const std::invalid_argument&) {
      thrown = true;
    }
    check(thrown && cpu == 0 && warnings.empty(), "a ValueError-kind error propagates without fallback");
    bool runtime = false;
    try {
      f.run([] { throw std::runtime_error("[volconv] command buffer failed"); }, [&] { ++cpu; });
    } catch (const std::runtime_error&) {
      runtime = true;
    }
    check(runtime && cpu == 0, "a GPU failure during a run is not hidden by a CPU rerun");
  }
  {  // A handler that throws turns the warning into the call's error (Python's -W error).
    warnings.clear();
    volconv::set_warning_handler([](const char*) { throw std::runtime_error("warning as error"); });
    GpuFallback f;
    int cpu = 0;
    bool thrown = false;
    try {
      f.run([] { throw GpuUnusable("x"); }, [&] { ++cpu; });
    } catch (const std::runtime_error& e) {
      thrown = std::string(e.what()) == "warning as error";
    }
    check(thrown && cpu == 0, "a throwing handler stops the call");
    volconv::set_warning_handler(nullptr);
  }
  if (failures == 0) std::printf("gpu_fallback_test: all passed\n");
  return failures == 0 ? 0 : 1;
}
