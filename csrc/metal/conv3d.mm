// conv3d on the GPU: the planner (csrc/metal_plan) decides the dispatch;
// this file binds the arrays (portable/buffers.h decides how), encodes
// exactly that plan, commits and waits. Errors become std::runtime_error
// (std::invalid_argument for what the caller can fix), never an abort.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "../core/backend.h"
#include "context.h"
#include "conv3d_plan.h"
#include "portable/buffers.h"

namespace volconv::metal {
namespace {

// One kernel argument: a Metal buffer and the byte offset of element 0.
struct Bound {
  id<MTLBuffer> buffer = nil;
  NSUInteger offset = 0;
  bool staged = false;  // a copy in the kernel dtype, not the caller's memory
};

id<MTLBuffer> new_staging_buffer(Context& ctx, std::size_t length, const char* what) {
  if (length > ctx.device.maxBufferLength)
    throw std::runtime_error("[volconv] The " + std::string(what) + " needs a Metal buffer of " +
                             std::to_string(length) + " bytes, more than this GPU's maximum of " +
                             std::to_string(ctx.device.maxBufferLength) + ".");
  id<MTLBuffer> buffer = [ctx.device newBufferWithLength:length options:MTLResourceStorageModeShared];
  if (!buffer)
    throw std::runtime_error("[volconv] Out of GPU memory: allocating " + std::to_string(length) +
                             " bytes for the " + what + " failed.");
  return buffer;
}

// `view` with its data as a CPU address (an MTLBuffer's contents + offset).
ConstTensorView host_view(const ConstTensorView& view, const ArrayMemory& memory, const char* what) {
  ConstTensorView host = view;
  if (memory.metal_buffer) {
    id<MTLBuffer> buffer = (__bridge id<MTLBuffer>)memory.metal_buffer;
    if (!buffer.contents)
      throw std::invalid_argument("[conv3d] The " + std::string(what) +
                                  " is in a private Metal buffer, which the CPU cannot read to convert it.");
    host.data = static_cast<const char*>(buffer.contents) + memory.metal_offset;
  }
  return host;
}

// The Metal buffer the kernel reads (or writes) for `view`: the caller's
// memory where plan_buffer allows, else a staging buffer in `dtype`
// (filled from the view when `copy_in`).
Bound bind(Context& ctx, const ConstTensorView& view, DType dtype, const char* what, bool copy_in) {
  const BufferPlan plan = plan_buffer(view, dtype);
  const ArrayMemory memory = memory_of(view);
  if (plan.zero_copy) {
    if (memory.metal_buffer)
      return Bound{(__bridge id<MTLBuffer>)memory.metal_buffer, NSUInteger(memory.metal_offset), false};
    id<MTLBuffer> wrapped = [ctx.device newBufferWithBytesNoCopy:const_cast<void*>(memory.host)
                                                          length:plan.length
                                                         options:MTLResourceStorageModeShared
                                                     deallocator:nil];
    if (wrapped) return Bound{wrapped, 0, false};
    // Memory Metal will not adopt (e.g. not one VM region): copy it instead.
  }
  Bound staged{new_staging_buffer(ctx, plan.length, what), 0, true};
  if (copy_in) gather(host_view(view, memory, what), staged.buffer.contents, dtype);
  return staged;
}

metal_plan::DeviceLimits limits_of(id<MTLDevice> device) {
  metal_plan::DeviceLimits limits;
  limits.max_threadgroup_memory = std::int64_t(device.maxThreadgroupMemoryLength);
  const MTLSize threads = device.maxThreadsPerThreadgroup;
  limits.max_threads_per_threadgroup = std::int64_t(threads.width);  // the kernels use x only
  // Every Apple GPU runs 32-wide simdgroups; check_pipeline checks each one.
  limits.simd_width = 32;
  return limits;
}

// What the pipeline and device allow; metal_plan::check_pipeline decides.
metal_plan::PipelineFacts facts_of(Context& ctx, id<MTLComputePipelineState> state) {
  metal_plan::PipelineFacts f;
  f.max_total_threads = state.maxTotalThreadsPerThreadgroup;
  f.execution_width = state.threadExecutionWidth;
  f.static_threadgroup_memory = state.staticThreadgroupMemoryLength;
  f.device_max_threadgroup_memory = ctx.device.maxThreadgroupMemoryLength;
  return f;
}

}  // namespace

void conv3d(const detail::ConvCall& call, int queue_id) {
  Context& ctx = available_context();
  const metal_plan::Conv3dPlan plan = metal_plan::plan_conv3d(call.geometry, call.output.dtype, limits_of(ctx.device));
  if (plan.grid.x == 0 || plan.grid.y == 0 || plan.grid.z == 0) return;  // nothing to compute
  id<MTLCommandQueue> queue = nil;
  {
    std::lock_guard<std::mutex> lock(ctx.mutex);
    if (queue_id < 0 || queue_id >= int(ctx.queues.size()))
      throw std::invalid_argument("[volconv] Unknown Metal queue " + std::to_string(queue_id) + ".");
    queue = ctx.queues[std::size_t(queue_id)].queue;
  }
  @autoreleasepool {
    @try {
      // Failures here mean this GPU cannot run the kernel at all: GpuUnusable,
      // which a call on the automatic default device answers with the CPU.
      require_self_check(ctx);
      id<MTLComputePipelineState> state =
          pipeline(ctx, metal_plan::library_unit(plan.family, plan.dtype), plan.kernel_name);
      try {
        metal_plan::check_pipeline(plan, facts_of(ctx, state));
      } catch (const std::runtime_error& e) {
        throw detail::GpuUnusable(e.what());
      }
      // The kernels' arguments (metal/*.metal): input [[buffer(0)]], weight [[buffer(1)]],
      // output [[buffer(2)]], p [[buffer(3)]], smem [[threadgroup(0)]].
      const Bound input = bind(ctx, call.input, plan.dtype, "input", true);
      const Bound weight = bind(ctx, call.weight, plan.dtype, "weight", true);
      const Bound output = bind(ctx, call.output, plan.dtype, "output", false);
      if (output.staged && call.output.data == nullptr)
        throw std::invalid_argument(
            "[conv3d] The output is a private Metal buffer that is not contiguous or not " +
            std::string(dtype_name(plan.dtype)) + ": the result cannot be copied into it.");

      id<MTLCommandBuffer> commands = [queue commandBuffer];
      if (!commands) throw std::runtime_error("[volconv] Creating a Metal command buffer failed.");
      id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
      [encoder setComputePipelineState:state];
      [encoder setBuffer:input.buffer offset:input.offset atIndex:0];
      [encoder setBuffer:weight.buffer offset:weight.offset atIndex:1];
      [encoder setBuffer:output.buffer offset:output.offset atIndex:2];
      [encoder setBytes:&plan.params length:sizeof(plan.params) atIndex:3];
      [encoder setThreadgroupMemoryLength:metal_plan::threadgroup_memory_length(plan) atIndex:0];
      [encoder dispatchThreadgroups:MTLSizeMake(plan.grid.x, plan.grid.y, plan.grid.z)
              threadsPerThreadgroup:MTLSizeMake(plan.threadgroup.x, plan.threadgroup.y, plan.threadgroup.z)];
      [encoder endEncoding];
      {
        std::lock_guard<std::mutex> lock(ctx.mutex);
        ctx.queues[std::size_t(queue_id)].last = commands;
      }
      [commands commit];
      [commands waitUntilCompleted];
      if (commands.status != MTLCommandBufferStatusCompleted)
        throw std::runtime_error(describe("Running " + metal_plan::describe(plan) + " on the GPU failed", commands.error));
      if (output.staged) scatter(output.buffer.contents, plan.dtype, call.output);
    } @catch (NSException* e) {
      throw std::runtime_error("[volconv] Metal raised " + std::string(e.name.UTF8String) + ": " +
                               std::string(e.reason ? e.reason.UTF8String : "") + ".");
    }
  }
}

}  // namespace volconv::metal
