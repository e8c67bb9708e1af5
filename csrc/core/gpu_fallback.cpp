#include "gpu_fallback.h"

#include <atomic>
#include <cstdio>

#include "volconv/device.h"

namespace volconv {
namespace {
std::atomic<WarningHandler> g_handler{nullptr};
}

void set_warning_handler(WarningHandler handler) { g_handler.store(handler); }

namespace detail {

std::string gpu_fallback_warning(const std::string& reason) {
  return "[volconv] The GPU cannot run volconv's kernels, so conv3d runs on the CPU (once per process this "
         "warning; pass stream=gpu to get the error instead, stream=cpu to choose the CPU). Reason: " +
         reason;
}

void warn(const std::string& message) {
  if (WarningHandler handler = g_handler.load()) {
    handler(message.c_str());
    return;
  }
  std::fprintf(stderr, "%s\n", message.c_str());
}

GpuFallback& gpu_fallback() {
  static GpuFallback* fallback = new GpuFallback;  // never destroyed: safe at exit
  return *fallback;
}

}  // namespace detail
}  // namespace volconv
