// The lane-layout self-check: metal/conv3d_self_check.metal run once per
// device before the first conv, its inputs and verdict from the portable
// portable/self_check.h (which the Linux emulator tests run too).
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <cstring>

#include "context.h"
#include "portable/self_check.h"

namespace volconv::metal {
namespace {

id<MTLBuffer> shared_buffer(Context& ctx, const void* data, std::size_t length) {
  id<MTLBuffer> buffer = [ctx.device newBufferWithLength:length options:MTLResourceStorageModeShared];
  if (buffer && data) std::memcpy(buffer.contents, data, length);
  return buffer;
}

// "" when the check passes, else the reason.
std::string run_self_check(Context& ctx) {
  id<MTLComputePipelineState> state = nil;
  try {
    state = pipeline(ctx, metal_plan::self_check_library_unit(), kSelfCheckKernel);
  } catch (const std::exception& e) {
    return e.what();
  }
  @autoreleasepool {
    float input[kSelfCheckInputFloats], weight[kSelfCheckInputFloats];
    self_check_inputs(input, weight);
    id<MTLBuffer> a = shared_buffer(ctx, input, sizeof(input));
    id<MTLBuffer> b = shared_buffer(ctx, weight, sizeof(weight));
    id<MTLBuffer> out = shared_buffer(ctx, nullptr, kSelfCheckOutputFloats * sizeof(float));
    id<MTLCommandQueue> queue = [ctx.device newCommandQueue];
    id<MTLCommandBuffer> commands = queue ? [queue commandBuffer] : nil;
    if (!a || !b || !out || !commands) return "[volconv] Setting up the GPU self-check failed (out of memory?).";
    const Conv3dParams params{};
    id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
    [encoder setComputePipelineState:state];
    [encoder setBuffer:a offset:0 atIndex:0];
    [encoder setBuffer:b offset:0 atIndex:1];
    [encoder setBuffer:out offset:0 atIndex:2];
    [encoder setBytes:&params length:sizeof(params) atIndex:3];
    [encoder setThreadgroupMemoryLength:16 atIndex:0];  // the kernel declares smem, unused
    [encoder dispatchThreadgroups:MTLSizeMake(1, 1, 1) threadsPerThreadgroup:MTLSizeMake(kSelfCheckThreads, 1, 1)];
    [encoder endEncoding];
    [commands commit];
    [commands waitUntilCompleted];
    if (commands.status != MTLCommandBufferStatusCompleted)
      return describe("Running the GPU self-check failed", commands.error);
    const std::string failure = self_check_failure(static_cast<const float*>(out.contents));
    if (!failure.empty())
      return "[volconv] This GPU fails volconv's simdgroup_matrix lane-layout self-check, so its kernels would "
             "compute wrong results: " + failure + ".";
    return "";
  }
}

}  // namespace

void require_self_check(Context& ctx) {
  std::lock_guard<std::mutex> lock(ctx.self_check_mutex);
  if (!ctx.self_checked) {
    ctx.self_check_error = run_self_check(ctx);
    ctx.self_checked = true;
  }
  if (!ctx.self_check_error.empty()) throw detail::GpuUnusable(ctx.self_check_error);
}

}  // namespace volconv::metal
