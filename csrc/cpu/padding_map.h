// Padding modes in the loaders' address math: which input element a padded
// coordinate reads. A loader that meets a coordinate outside the input asks
// source() instead of reading a zero; no padded copy of the input is made.
#pragma once

#include <cstdint>

#include "volconv/params.h"

namespace volconv::cpu {

// The input index padded coordinate c reads along an axis of n elements, or
// -1 for a zero. c lies in [-padding_lo, n + padding_hi), which validation
// bounds so that one reflection or wrap lands inside (geometry.cpp).
inline std::int64_t padded_source(PaddingMode mode, std::int64_t n, std::int64_t c) {
  if (c >= 0 && c < n) return c;
  switch (mode) {
    case PaddingMode::reflect: return c < 0 ? -c : 2 * (n - 1) - c;
    case PaddingMode::replicate: return c < 0 ? 0 : n - 1;
    case PaddingMode::circular: return c < 0 ? c + n : c - n;
    default: return -1;
  }
}

// The three axes of one call.
struct PaddingMap {
  PaddingModes mode{};
  std::int64_t n[3] = {0, 0, 0};

  explicit PaddingMap(const ConvGeometry& g) : mode(g.params.padding_mode), n{g.in[0], g.in[1], g.in[2]} {}
  std::int64_t source(int axis, std::int64_t c) const { return padded_source(mode[axis], n[axis], c); }
  // Whether the padding along `axis` holds input values (not zeros).
  bool reads(int axis) const { return mode[axis] != PaddingMode::zeros; }
};

}  // namespace volconv::cpu
