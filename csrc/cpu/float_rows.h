// Whole rows of a channels-last view as fp32, for the row drivers whose
// kernels read fp32: the depthwise data driver (dw_data.cpp) and the forward
// row paths (conv3d_dwconv.cpp: depthwise, few C_in, small C_out) with
// float16 / bfloat16 inputs and results.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "conv_tile.h"
#include "dw_row_cache.h"
#include "ukernels/ukernel.h"
#include "volconv/tensor.h"

namespace volconv::cpu {

// Input rows (all W, all C) as fp32, [w][c]: in place when they are fp32
// with contiguous channels, else converted into a per-thread cache keyed by
// the row (consecutive output rows reuse most of their rows). G: any
// geometry with in (D, H, W) and in_channels.
// Planar (planar_row > 0, the pairs kernel's rows): always copied, [c][planar_row]
// with input position w at planar_lo + w and zeros around it (the cache
// starts zeroed and only [planar_lo, planar_lo + W) is ever written).
template <class EX>
struct InputRows {
  using S = typename EX::storage;
  const S* base;
  Shape5 s;
  std::int64_t width, channels, rows0, rows1, planar_row, planar_lo;
  bool in_place;
  const KernelTable* kt;
  DwRowCache<float> cache;

  template <class G>
  InputRows(const ConstTensorView& v, const G& g, const KernelTable& table, std::int64_t n_slots,
            std::int64_t planar_row_ = 0, std::int64_t planar_lo_ = 0)
      : base(static_cast<const S*>(v.data)), s(v.strides), width(g.in[2]), channels(g.in_channels),
        rows0(g.in[0]), rows1(g.in[1]), planar_row(planar_row_), planar_lo(planar_lo_),
        in_place(std::is_same_v<S, float> && v.strides[4] == 1 && planar_row_ == 0), kt(&table),
        cache(in_place ? 1 : n_slots, in_place ? 0 : planar_row_ > 0 ? planar_row_ * channels : width * channels) {}
  // Elements between consecutive positions of a row.
  std::int64_t step() const { return planar_row > 0 ? 1 : in_place ? s[3] : channels; }
  // Elements between consecutive channels of a row.
  std::int64_t channel_step() const { return planar_row > 0 ? planar_row : in_place ? s[4] : 1; }

  const float* row(std::int64_t n, std::int64_t d, std::int64_t h) {
    const S* src = base + n * s[0] + d * s[1] + h * s[2];
    if (in_place) return reinterpret_cast<const float*>(src);
    bool hit = false;
    float* dst = cache.slot((n * rows0 + d) * rows1 + h, hit);
    if (hit) return dst;
    if (planar_row > 0) {
      for (std::int64_t c = 0; c < channels; ++c) {  // W innermost: few channels make a short inner loop
        float* to = dst + c * planar_row + planar_lo;
        const S* from = src + c * s[4];
        for (std::int64_t w = 0; w < width; ++w) to[w] = EX::template load<float>(load_any(from + w * s[3]));
      }
      return dst;
    }
    // A packed row converts in one call: per position, a few channels were a call each.
    if (s[4] == 1 && s[3] == channels && kt->convert_row(dst, src, width * channels, storage_code(EX::dtype)))
      return dst;
    for (std::int64_t w = 0; w < width; ++w) {
      const S* at = src + w * s[3];
      float* to = dst + w * channels;
      if (s[4] == 1 && kt->convert_row(to, at, channels, storage_code(EX::dtype))) continue;
      for (std::int64_t c = 0; c < channels; ++c) to[c] = EX::template load<float>(load_any(at + c * s[4]));
    }
    return dst;
  }
};

// Writes one output row (n, od, oh) of fp32 values [w][c] to the result (any
// dtype and strides), rounding once. ptrs: room for wo pointers.
void store_row(const TensorView& r, const KernelTable& kt, std::int64_t n, std::int64_t od, std::int64_t oh,
               const float* v, std::int64_t wo, std::int64_t C, std::vector<void*>& ptrs);

}  // namespace volconv::cpu
