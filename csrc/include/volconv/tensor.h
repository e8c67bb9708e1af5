// Non-owning views of 5-D arrays. Strides are in elements (not bytes), may be
// any value (including 0 and negative), and are 64-bit. conv3d refuses (with
// std::invalid_argument) a view whose offsets reach past 2^59 elements, and an
// output whose strides would write two elements to one place (e.g. a 0 stride
// over a dimension longer than 1). Data may be null only for an empty view,
// or when the view lives in a Metal buffer.
//
// Metal buffers (macOS): a view may name the id<MTLBuffer> it lives in
// (`metal_buffer`, a bridged pointer, not retained) and the byte offset of
// element 0 in it (`metal_offset`); the GPU then reads it without a copy.
// `data` may stay null: the CPU path reads the buffer's contents (shared
// storage only).
#pragma once

#include <array>
#include <cstdint>

#include "volconv/dtype.h"

namespace volconv {

using Shape5 = std::array<std::int64_t, 5>;

// Row-major (C-order) strides for `shape`.
Shape5 contiguous_strides(const Shape5& shape);

// Number of elements (0 for an empty shape).
std::int64_t numel(const Shape5& shape);

// Read-only view: what conv3d reads (input, weight). Never written through.
struct ConstTensorView {
  const void* data = nullptr;
  DType dtype = DType::float32;
  Shape5 shape{};
  Shape5 strides{};
  const void* metal_buffer = nullptr;
  std::int64_t metal_offset = 0;

  // A C-contiguous view of `shape`.
  static ConstTensorView contiguous(const void* data, DType dtype, const Shape5& shape);
};

// Writable view: where conv3d writes its result.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::float32;
  Shape5 shape{};
  Shape5 strides{};
  const void* metal_buffer = nullptr;
  std::int64_t metal_offset = 0;

  static TensorView contiguous(void* data, DType dtype, const Shape5& shape);
  operator ConstTensorView() const { return {data, dtype, shape, strides, metal_buffer, metal_offset}; }
};

}  // namespace volconv
