// The process-wide Metal state shared by device.mm and conv3d.mm
// (Objective-C++, ARC). Made once, on first use; lives until exit.
#pragma once

#import <Metal/Metal.h>

#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "../core/gpu_fallback.h"
#include "conv3d_plan.h"

namespace volconv::metal {

// Kernels use simdgroup_matrix, which needs Apple7 (M1 / A14) or later.
inline constexpr MTLGPUFamily kGpuFamily = MTLGPUFamilyApple7;

struct Queue {
  id<MTLCommandQueue> queue = nil;
  id<MTLCommandBuffer> last = nil;  // the last committed command buffer, for synchronize
};

struct Context {
  id<MTLDevice> device = nil;  // nil when unavailable
  std::string unavailable;     // why, when device is nil

  std::mutex mutex;  // guards everything below
  // One library per metal_plan::LibraryUnit (kernel family x element type),
  // compiled on first use; a failed compile is remembered, not retried.
  std::unordered_map<std::string, id<MTLLibrary>> libraries;
  std::unordered_map<std::string, std::string> library_errors;
  std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines;  // by kernel host_name
  std::deque<Queue> queues;  // by queue id; a deque keeps references stable

  std::mutex self_check_mutex;  // guards the two below (held while the check runs)
  bool self_checked = false;
  std::string self_check_error;  // "" when the lane-layout self-check passed
};

// The context; its device is chosen on the first call.
Context& context();

// The context, throwing std::invalid_argument when no usable GPU exists.
Context& available_context();

// The pipeline of kernel `name`, from the library of `unit` (the embedded
// source with the unit's defines), each compiled on first use and cached.
// Throws detail::GpuUnusable with Metal's message on failure.
id<MTLComputePipelineState> pipeline(Context& ctx, const metal_plan::LibraryUnit& unit, const std::string& name);

// Runs the lane-layout self-check (self_check.mm) on the device once; throws
// detail::GpuUnusable with the reason, now and on every later call, if it
// failed.
void require_self_check(Context& ctx);

// "[volconv] <what>: <Metal's description> (<domain> <code>)".
std::string describe(const std::string& what, NSError* error);

}  // namespace volconv::metal
