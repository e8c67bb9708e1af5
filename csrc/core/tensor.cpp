#include "volconv/tensor.h"

namespace volconv {

Shape5 contiguous_strides(const Shape5& shape) {
  Shape5 strides{};
  std::int64_t s = 1;
  for (int i = 4; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
  return strides;
}

std::int64_t numel(const Shape5& shape) {
  std::int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

ConstTensorView ConstTensorView::contiguous(const void* data, DType dtype, const Shape5& shape) {
  return {data, dtype, shape, contiguous_strides(shape)};
}

TensorView TensorView::contiguous(void* data, DType dtype, const Shape5& shape) {
  return {data, dtype, shape, contiguous_strides(shape)};
}

}  // namespace volconv
