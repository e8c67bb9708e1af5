#include "buffers.h"

#include <cstring>

#include "../../core/element.h"

namespace volconv::metal {

bool is_contiguous(const Shape5& shape, const Shape5& strides) {
  std::int64_t expected = 1;
  for (int i = 4; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

ArrayMemory memory_of(const ConstTensorView& view) {
  if (view.metal_buffer) return ArrayMemory{view.data, view.metal_buffer, view.metal_offset};
  return ArrayMemory{view.data, nullptr, 0};
}

BufferPlan plan_buffer(const ConstTensorView& view, DType kernel_dtype) {
  BufferPlan plan;
  plan.bytes = std::size_t(numel(view.shape)) * dtype_size(kernel_dtype);
  const ArrayMemory memory = memory_of(view);
  const bool adoptable = memory.metal_buffer != nullptr
                             ? std::size_t(memory.metal_offset) % kBufferAlignment == 0
                             : reinterpret_cast<std::uintptr_t>(memory.host) % kPageBytes == 0;
  plan.zero_copy =
      plan.bytes > 0 && view.dtype == kernel_dtype && adoptable && is_contiguous(view.shape, view.strides);
  if (plan.zero_copy && memory.metal_buffer == nullptr)
    plan.length = (plan.bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
  else
    plan.length = plan.bytes > 0 ? plan.bytes : dtype_size(kernel_dtype);  // Metal has no empty buffers
  return plan;
}

namespace {

// Calls row(src_offset, dst_offset, n) for each run of the innermost
// dimension; offsets in elements, the contiguous side's advancing by n.
template <class Row> void for_each_row(const Shape5& shape, const Shape5& strides, Row&& row) {
  if (numel(shape) == 0) return;
  std::int64_t flat = 0;
  for (std::int64_t a = 0; a < shape[0]; ++a)
    for (std::int64_t b = 0; b < shape[1]; ++b)
      for (std::int64_t c = 0; c < shape[2]; ++c)
        for (std::int64_t d = 0; d < shape[3]; ++d) {
          row(a * strides[0] + b * strides[1] + c * strides[2] + d * strides[3], flat, shape[4]);
          flat += shape[4];
        }
}

// Converts elements through double: half, bfloat16 and float32 values are
// exact there, so the store is their only rounding.
template <class From, class To> void convert(const void* src, std::int64_t s, std::int64_t ss, void* dst,
                                              std::int64_t d, std::int64_t ds, std::int64_t n) {
  auto* in = static_cast<const typename From::storage*>(src);
  auto* out = static_cast<typename To::storage*>(dst);
  for (std::int64_t i = 0; i < n; ++i) out[d + i * ds] = To::store(From::template load<double>(in[s + i * ss]));
}

// Copies n elements from src[s + i*ss] to dst[d + i*ds], converting dtype.
void copy_run(const void* src, DType src_dtype, std::int64_t s, std::int64_t ss, void* dst, DType dst_dtype,
              std::int64_t d, std::int64_t ds, std::int64_t n) {
  if (src_dtype == dst_dtype && ss == 1 && ds == 1) {
    const std::size_t size = dtype_size(src_dtype);
    std::memcpy(static_cast<char*>(dst) + d * std::int64_t(size),
                static_cast<const char*>(src) + s * std::int64_t(size), std::size_t(n) * size);
    return;
  }
  visit_dtype(src_dtype, [&](auto from) {
    visit_dtype(dst_dtype, [&](auto to) {
      convert<decltype(from), decltype(to)>(src, s, ss, dst, d, ds, n);
    });
  });
}

}  // namespace

void gather(const ConstTensorView& src, void* dst, DType dst_dtype) {
  for_each_row(src.shape, src.strides, [&](std::int64_t s, std::int64_t flat, std::int64_t n) {
    copy_run(src.data, src.dtype, s, src.strides[4], dst, dst_dtype, flat, 1, n);
  });
}

void scatter(const void* src, DType src_dtype, const TensorView& dst) {
  for_each_row(dst.shape, dst.strides, [&](std::int64_t d, std::int64_t flat, std::int64_t n) {
    copy_run(src, src_dtype, flat, 1, dst.data, dst.dtype, d, dst.strides[4], n);
  });
}

}  // namespace volconv::metal
