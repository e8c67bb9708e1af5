// Binding the caller's arrays as Metal kernel arguments, shared by conv3d.mm
// and conv_training.mm: the caller's memory where portable/buffers.h allows
// it, else a staging copy in the kernel dtype; and the device facts the
// planners need (Objective-C++, ARC).
#pragma once

#import <Metal/Metal.h>

#include "context.h"
#include "portable/buffers.h"

namespace volconv::metal {

// One kernel argument: a Metal buffer and the byte offset of element 0.
struct Bound {
  id<MTLBuffer> buffer = nil;
  NSUInteger offset = 0;
  bool staged = false;  // a copy in the kernel dtype, not the caller's memory
};

// A shared-storage buffer of `length` bytes for `what` (std::runtime_error
// past the device's maximum or when the allocation fails).
id<MTLBuffer> new_staging_buffer(Context& ctx, std::size_t length, const char* what);

// The Metal buffer the kernel reads (or writes) for `view`: the caller's
// memory where plan_buffer allows, else a staging buffer in `dtype` (filled
// from the view when `copy_in`). `op` names the user's op in messages.
Bound bind(Context& ctx, const ConstTensorView& view, DType dtype, const char* op, const char* what, bool copy_in);

// The conv3d epilogue's bias as the kernels read it: C_out float32 values,
// contiguous, in a staging buffer (converted from any float dtype and stride).
Bound bind_bias(Context& ctx, const ConstVectorView& bias);

// What the planners need to know about `device`.
metal_plan::DeviceLimits limits_of(id<MTLDevice> device);

// What a compiled pipeline and the device allow (metal_plan::check_pipeline decides).
metal_plan::PipelineFacts facts_of(Context& ctx, id<MTLComputePipelineState> state);

}  // namespace volconv::metal
