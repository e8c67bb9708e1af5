// The training ops on the GPU: the training planner (csrc/metal_plan/
// conv_training_plan.h) decides the dispatches; this file binds the arrays
// (binding.h), allocates the float32 partial sums a weight gradient needs
// and the scratch of a padding fold's boxes, encodes every dispatch of the plan in order on the stream's queue (one
// command buffer: Metal runs a compute encoder's dispatches in order, each
// seeing the writes of the ones before), commits and waits.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "../core/conv_problem.h"
#include "binding.h"
#include "context.h"
#include "conv_training_plan.h"

namespace volconv::metal {

void run_problem(const detail::ConvProblem& problem, const char* op, int queue_id) {
  Context& ctx = available_context();
  const bool weight_grad = problem.op == detail::ConvOp::weight_grad;
  const metal_plan::TrainingPlan plan =
      metal_plan::plan_problem(op, problem, problem.result.dtype, limits_of(ctx.device));
  id<MTLCommandQueue> queue = nil;
  {
    std::lock_guard<std::mutex> lock(ctx.mutex);
    if (queue_id < 0 || queue_id >= int(ctx.queues.size()))
      throw std::invalid_argument("[volconv] Unknown Metal queue " + std::to_string(queue_id) + ".");
    queue = ctx.queues[std::size_t(queue_id)].queue;
  }
  @autoreleasepool {
    @try {
      // Failures here mean this GPU cannot run the kernels at all (GpuUnusable).
      require_self_check(ctx);
      std::vector<id<MTLComputePipelineState>> states;
      for (const metal_plan::TrainingDispatch& d : plan.dispatches) {
        id<MTLComputePipelineState> state = pipeline(ctx, metal_plan::library_unit(d.family, plan.dtype), d.kernel_name);
        try {
          metal_plan::check_pipeline(d, facts_of(ctx, state));
        } catch (const std::runtime_error& e) {
          throw detail::GpuUnusable(e.what());
        }
        states.push_back(state);
      }
      // The roles of metal_plan::TrainingBuffer: the op's two arrays, the
      // result, the partial sums (float32) and the fold boxes' scratch (the
      // plan's dtype), the last two never seen by the caller.
      const ConstTensorView second = weight_grad ? problem.output : problem.weight;
      const Bound input = bind(ctx, problem.input, plan.dtype, op, "input", true);
      const Bound operand = bind(ctx, second, plan.dtype, op, weight_grad ? "grad_output" : "weight", true);
      const Bound result = bind(ctx, problem.result, plan.dtype, op, "result", false);
      if (result.staged && problem.result.data == nullptr)
        throw std::invalid_argument("[" + std::string(op) +
                                    "] The result is a private Metal buffer that is not contiguous or not " +
                                    std::string(dtype_name(plan.dtype)) + ": the result cannot be copied into it.");
      const Bound partials{plan.partials_bytes ? new_staging_buffer(ctx, plan.partials_bytes, "partial sums") : nil,
                           0, true};
      const Bound scratch{plan.scratch_bytes ? new_staging_buffer(ctx, plan.scratch_bytes, "padding fold boxes") : nil,
                          0, true};
      const auto bound = [&](metal_plan::TrainingBuffer role) -> const Bound& {
        switch (role) {
          case metal_plan::TrainingBuffer::input: return input;
          case metal_plan::TrainingBuffer::weight:
          case metal_plan::TrainingBuffer::output: return operand;
          case metal_plan::TrainingBuffer::partials: return partials;
          case metal_plan::TrainingBuffer::scratch: return scratch;
          case metal_plan::TrainingBuffer::result: break;
        }
        return result;
      };

      id<MTLCommandBuffer> commands = [queue commandBuffer];
      if (!commands) throw std::runtime_error("[volconv] Creating a Metal command buffer failed.");
      id<MTLComputeCommandEncoder> encoder = [commands computeCommandEncoder];
      for (std::size_t i = 0; i < plan.dispatches.size(); ++i) {
        const metal_plan::TrainingDispatch& d = plan.dispatches[i];
        // The kernels' arguments (metal/conv_training_*.metal): [[buffer(0..2)]]
        // by the dispatch's roles, params [[buffer(3)]], [[threadgroup(0)]].
        const Bound& b0 = bound(d.buffers[0]);
        const Bound& b1 = bound(d.buffers[1]);
        const Bound& b2 = bound(d.buffers[2]);
        [encoder setComputePipelineState:states[i]];
        [encoder setBuffer:b0.buffer offset:b0.offset atIndex:0];
        [encoder setBuffer:b1.buffer offset:b1.offset atIndex:1];
        [encoder setBuffer:b2.buffer offset:b2.offset atIndex:2];
        if (d.family == metal_plan::TrainingFamily::padding_fold)
          [encoder setBytes:&d.fold length:sizeof(d.fold) atIndex:3];
        else
          [encoder setBytes:&d.params length:sizeof(d.params) atIndex:3];
        [encoder setThreadgroupMemoryLength:metal_plan::threadgroup_memory_length(d) atIndex:0];
        if (d.grid.x && d.grid.y && d.grid.z)
          [encoder dispatchThreadgroups:MTLSizeMake(d.grid.x, d.grid.y, d.grid.z)
                  threadsPerThreadgroup:MTLSizeMake(d.threadgroup.x, d.threadgroup.y, d.threadgroup.z)];
      }
      [encoder endEncoding];
      {
        std::lock_guard<std::mutex> lock(ctx.mutex);
        ctx.queues[std::size_t(queue_id)].last = commands;
      }
      [commands commit];
      [commands waitUntilCompleted];
      if (commands.status != MTLCommandBufferStatusCompleted)
        throw std::runtime_error(describe(std::string("Running ") + op + " on the GPU failed", commands.error));
      if (result.staged) scatter(result.buffer.contents, plan.dtype, problem.result);
    } @catch (NSException* e) {
      throw std::runtime_error("[volconv] Metal raised " + std::string(e.name.UTF8String) + ": " +
                               std::string(e.reason ? e.reason.UTF8String : "") + ".");
    }
  }
}

}  // namespace volconv::metal
