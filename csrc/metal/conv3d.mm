// conv3d on the GPU: the planner (csrc/metal_plan) decides the dispatch;
// this file binds the arrays (binding.h), encodes
// exactly that plan, commits and waits. Errors become std::runtime_error
// (std::invalid_argument for what the caller can fix), never an abort.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "../core/backend.h"
#include "context.h"
#include "conv3d_plan.h"
#include "binding.h"

namespace volconv::metal {

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
      // output [[buffer(2)]], p [[buffer(3)]], bias [[buffer(4)]], residual
      // [[buffer(5)]], smem [[threadgroup(0)]].
      const Bound input = bind(ctx, call.input, plan.dtype, "conv3d", "input", true);
      const Bound weight = bind(ctx, call.weight, plan.dtype, "conv3d", "weight", true);
      const Bound output = bind(ctx, call.output, plan.dtype, "conv3d", "output", false);
      if (output.staged && call.output.data == nullptr)
        throw std::invalid_argument(
            "[conv3d] The output is a private Metal buffer that is not contiguous or not " +
            std::string(dtype_name(plan.dtype)) + ": the result cannot be copied into it.");
      // The epilogue's operands; an absent one is stood in for by the output,
      // which the kernel then never reads through it (params.has_*).
      const Epilogue& epilogue = call.geometry.params.epilogue;
      const Bound bias = epilogue.bias ? bind_bias(ctx, *epilogue.bias) : output;
      const Bound residual =
          epilogue.residual ? bind(ctx, *epilogue.residual, plan.dtype, "conv3d", "residual", true) : output;

      id<MTLCommandBuffer> commands = [queue commandBuffer];
      if (!commands) throw std::runtime_error("[volconv] Creating a Metal command buffer failed.");
      id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
      [encoder setComputePipelineState:state];
      [encoder setBuffer:input.buffer offset:input.offset atIndex:0];
      [encoder setBuffer:weight.buffer offset:weight.offset atIndex:1];
      [encoder setBuffer:output.buffer offset:output.offset atIndex:2];
      [encoder setBytes:&plan.params length:sizeof(plan.params) atIndex:3];
      [encoder setBuffer:bias.buffer offset:bias.offset atIndex:4];
      [encoder setBuffer:residual.buffer offset:residual.offset atIndex:5];
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
