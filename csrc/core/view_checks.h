// Checks every op runs on the views it is given, before any work: the
// 64-bit reach of strides, writes that never overlap, and the CPU address
// of a view in a shared Metal buffer. One copy for conv3d and the training
// ops, whose messages name their own op.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "backend.h"
#include "volconv/tensor.h"

namespace volconv::detail {

// A view living in a Metal buffer gets its CPU address too, where the CPU
// can see the buffer (shared storage): the CPU path and staging copies use it.
template <class View>
View with_host_address(View view) {
  if (view.metal_buffer && view.data == nullptr) {
    if (char* contents = static_cast<char*>(metal::buffer_contents(view.metal_buffer)))
      view.data = contents + view.metal_offset;
  }
  return view;
}

// [lowest, highest] byte address a view touches (the view is non-empty).
struct ByteRange {
  std::uintptr_t lo, hi;
};

inline ByteRange byte_range(const void* data, DType dtype, const Shape5& shape, const Shape5& strides) {
  const std::int64_t size = std::int64_t(dtype_size(dtype));
  std::int64_t lo = 0, hi = 0;
  for (int i = 0; i < 5; ++i) {
    const std::int64_t reach = (shape[i] - 1) * strides[i] * size;
    (reach < 0 ? lo : hi) += reach;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(data);
  return {base + std::uintptr_t(lo), base + std::uintptr_t(hi) + std::uintptr_t(size) - 1};
}

// A strided view writes each element once only if, taken in order of
// increasing |stride|, each stride steps over everything the smaller ones
// reach. (Sufficient, and what every real layout satisfies.)
inline bool writes_each_element_once(const Shape5& shape, const Shape5& strides) {
  int order[5] = {0, 1, 2, 3, 4};
  std::sort(order, order + 5, [&](int a, int b) { return std::abs(strides[a]) < std::abs(strides[b]); });
  std::int64_t reach = 0;  // largest offset spanned by the dims seen so far
  for (int i : order) {
    if (shape[i] == 1) continue;
    if (std::abs(strides[i]) <= reach) return false;
    reach += std::abs(strides[i]) * (shape[i] - 1);
  }
  return true;
}

// Strides are checked for 64-bit safety: every offset a view reaches must
// fit. Each stride is bounded first, so std::abs below is defined.
// Every offset a view reaches must fit in 64 bits with room to spare; each
// stride is bounded first, so std::abs is defined.
constexpr std::int64_t kMaxReach = std::int64_t(1) << 59;

inline bool strides_fit(const Shape5& shape, const Shape5& strides) {
  std::int64_t reach = 0;
  for (int i = 0; i < 5; ++i) {
    if (shape[i] <= 0) continue;
    std::int64_t r;
    if (strides[i] < -kMaxReach || strides[i] > kMaxReach ||
        __builtin_mul_overflow(std::abs(strides[i]), shape[i] - 1, &r) ||
        __builtin_add_overflow(reach, r, &reach) || reach > kMaxReach)
      return false;
  }
  return true;
}

}  // namespace volconv::detail
