// What happens when the GPU cannot run volconv's kernels at all (the Metal
// library fails to compile, the lane-layout self-check fails, a pipeline
// cannot be built): the backend throws GpuUnusable. A call that chose the
// GPU explicitly gets it as the error (a std::runtime_error with the
// reason); a call that only inherited the GPU as the automatic default
// device runs on the CPU instead, with one warning per process. Plain C++,
// so the policy is tested on Linux (gpu_fallback_test.cpp).
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>

namespace volconv::detail {

struct GpuUnusable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The warning given once when a call falls back to the CPU.
std::string gpu_fallback_warning(const std::string& reason);

// Where warnings go: the handler set by set_warning_handler (volconv/device.h),
// else stderr.
void warn(const std::string& message);

class GpuFallback {
 public:
  // Runs gpu(); if it throws GpuUnusable, warns (the first time only) and
  // runs cpu(). Every other exception propagates unchanged.
  template <class Gpu, class Cpu>
  void run(Gpu&& gpu, Cpu&& cpu) {
    try {
      gpu();
      return;
    } catch (const GpuUnusable& e) {
      if (!warned_.exchange(true)) warn(gpu_fallback_warning(e.what()));
    }
    cpu();
  }

 private:
  std::atomic<bool> warned_{false};
};

// The process's fallback state (one warning per process).
GpuFallback& gpu_fallback();

}  // namespace volconv::detail
