// The binding helpers of binding.h.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "binding.h"

#include <algorithm>

namespace volconv::metal {


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

namespace {

// `view` with its data as a CPU address (an MTLBuffer's contents + offset).
ConstTensorView host_view(const ConstTensorView& view, const ArrayMemory& memory, const char* op,
                          const char* what) {
  ConstTensorView host = view;
  if (memory.metal_buffer) {
    id<MTLBuffer> buffer = (__bridge id<MTLBuffer>)memory.metal_buffer;
    if (!buffer.contents)
      throw std::invalid_argument("[" + std::string(op) + "] The " + std::string(what) +
                                  " is in a private Metal buffer, which the CPU cannot read to convert it.");
    host.data = static_cast<const char*>(buffer.contents) + memory.metal_offset;
  }
  return host;
}

}  // namespace

// The Metal buffer the kernel reads (or writes) for `view`: the caller's
// memory where plan_buffer allows, else a staging buffer in `dtype`
// (filled from the view when `copy_in`).
Bound bind(Context& ctx, const ConstTensorView& view, DType dtype, const char* op, const char* what, bool copy_in) {
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
  if (copy_in) gather(host_view(view, memory, op, what), staged.buffer.contents, dtype);
  return staged;
}

Bound bind_bias(Context& ctx, const ConstVectorView& bias) {
  // A (1, 1, 1, 1, C_out) view of the vector: gather converts and packs it.
  const ConstTensorView view{bias.data, bias.dtype, {1, 1, 1, 1, bias.size}, {0, 0, 0, 0, bias.stride}};
  const std::size_t length = std::size_t(std::max<std::int64_t>(bias.size, 1)) * sizeof(float);
  Bound staged{new_staging_buffer(ctx, length, "bias"), 0, true};
  gather(view, staged.buffer.contents, DType::float32);
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


}  // namespace volconv::metal
