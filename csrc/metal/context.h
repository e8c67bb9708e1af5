// The process-wide Metal state shared by device.mm and conv3d.mm
// (Objective-C++, ARC). Made once, on first use; lives until exit.
#pragma once

#import <Metal/Metal.h>

#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

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
  id<MTLLibrary> library = nil;
  std::string library_error;  // a failed compile is remembered, not retried
  std::unordered_map<std::string, id<MTLComputePipelineState>> pipelines;  // by kernel host_name
  std::deque<Queue> queues;  // by queue id; a deque keeps references stable
};

// The context; its device is chosen on the first call.
Context& context();

// The context, throwing std::invalid_argument when no usable GPU exists.
Context& available_context();

// The pipeline of kernel `name` from the embedded library, compiled on first
// use and cached. Throws std::runtime_error with Metal's message on failure.
id<MTLComputePipelineState> pipeline(Context& ctx, const std::string& name);

// "[volconv] <what>: <Metal's description> (<domain> <code>)".
std::string describe(const std::string& what, NSError* error);

}  // namespace volconv::metal
