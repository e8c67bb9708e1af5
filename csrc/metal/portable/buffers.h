// How the Metal host hands an array to a kernel, decided in portable C++ so
// Linux tests cover it. The kernels read and write C-contiguous buffers in
// one dtype; a view that already is one, in memory Metal can adopt, is bound
// without a copy, anything else goes through one staging buffer (gathering
// strides and converting dtype, rounding to nearest even).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../../core/output_blocks.h"
#include "volconv/tensor.h"

namespace volconv::metal {

// The VM page of Apple silicon. newBufferWithBytesNoCopy needs a
// page-aligned pointer and a length that is a multiple of it; volconv's own
// outputs are aligned to it (output_blocks.h).
inline constexpr std::size_t kPageBytes = detail::kOutputAlignment;

// Where an array's memory is: host memory (unified with the GPU's on Apple
// silicon), or an MTLBuffer it already lives in (an mlx.array on the GPU,
// exported through DLPack as kDLMetal: the buffer plus a byte offset).
struct ArrayMemory {
  const void* host = nullptr;          // element 0, when the memory is plain host memory
  const void* metal_buffer = nullptr;  // id<MTLBuffer>, not retained; nullptr for host memory
  std::int64_t metal_offset = 0;       // bytes from the buffer's start to element 0
};

// The memory of a view: its MTLBuffer when it names one (the core has then
// also set `host` to element 0 in the buffer's contents, contents +
// metal_offset, where the CPU can see them).
ArrayMemory memory_of(const ConstTensorView& view);

// The kernels need each buffer to start 16-byte aligned (vector loads).
inline constexpr std::size_t kBufferAlignment = 16;

// How one array reaches the GPU.
struct BufferPlan {
  bool zero_copy = false;   // wrap the caller's memory (else: a staging buffer)
  std::size_t bytes = 0;    // what the kernel reads or writes: numel * size of the kernel dtype
  std::size_t length = 0;   // the Metal buffer's length: never 0; page-rounded when zero_copy
};


// True when the view is C-contiguous (dimensions of size 1 may have any stride).
bool is_contiguous(const Shape5& shape, const Shape5& strides);

// Zero-copy when `view` is non-empty, contiguous, in `kernel_dtype` and
// either in an MTLBuffer at a 16-byte aligned offset or host memory
// starting on a page; otherwise staged.
BufferPlan plan_buffer(const ConstTensorView& view, DType kernel_dtype);

// Copies `src` (any strides, any dtype) into the contiguous `dst` of `dst_dtype`.
void gather(const ConstTensorView& src, void* dst, DType dst_dtype);

// Copies the contiguous `src` of `src_dtype` into `dst` (any strides, any dtype).
void scatter(const void* src, DType src_dtype, const TensorView& dst);

}  // namespace volconv::metal
