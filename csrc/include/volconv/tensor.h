// Non-owning views of 5-D arrays. Strides are in elements (not bytes), may be
// any value (including 0 and negative), and are 64-bit. conv3d refuses (with
// std::invalid_argument) a view whose offsets reach past 2^59 elements, and an
// output whose strides would write two elements to one place (e.g. a 0 stride
// over a dimension longer than 1). Data may be null only for an empty view.
#pragma once

#include <array>
#include <cstdint>

#include "volconv/dtype.h"

namespace volconv {

using Shape5 = std::array<std::int64_t, 5>;

// Row-major (C-order) strides for `shape`.
Shape5 contiguous_strides(const Shape5& shape);

// Read-only view: what conv3d reads (input, weight). Never written through.
struct ConstTensorView {
  const void* data = nullptr;
  DType dtype = DType::float32;
  Shape5 shape{};
  Shape5 strides{};

  // A C-contiguous view of `shape`.
  static ConstTensorView contiguous(const void* data, DType dtype, const Shape5& shape);
};

// Writable view: where conv3d writes its result.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::float32;
  Shape5 shape{};
  Shape5 strides{};

  static TensorView contiguous(void* data, DType dtype, const Shape5& shape);
  operator ConstTensorView() const { return {data, dtype, shape, strides}; }
};

}  // namespace volconv
