// Shared by the row kernels (depthwise, C_in = 1): which W positions of a
// row have every tap inside the input, the taps each border position keeps,
// and whether the row may be written with streaming stores.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

// Zeroes an MR x NV tile of accumulators (inlined, so they stay registers).
template <class V, int MR, int NV>
inline __attribute__((always_inline)) void zero_tile(typename V::V (&acc)[MR][NV]) {
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
}

// Output positions ow in [lo, hi) read inside the input at every kw
// (iw = ow * stride - pad + kw * dilation).
struct RowInterior {
  std::int64_t lo, hi;
};

inline RowInterior row_interior(const volconv::cpu::DwconvParams& p) {
  std::int64_t lo = (p.pad + p.stride - 1) / p.stride;
  std::int64_t hi = p.width - 1 + p.pad - (p.kw - 1) * p.dilation;
  hi = hi < 0 ? 0 : hi / p.stride + 1;
  if (hi > p.wo) hi = p.wo;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// Calls single(ow, kw0, kw1) for the border positions ow in [from, to)
// (outside the interior) with the taps [kw0, kw1) that read inside the input.
template <class F>
void row_borders(const volconv::cpu::DwconvParams& p, std::int64_t from, std::int64_t to, F&& single) {
  for (std::int64_t ow = from; ow < to; ++ow) {
    const std::int64_t iw0 = ow * p.stride - p.pad;
    std::int64_t kw0 = iw0 >= 0 ? 0 : (-iw0 + p.dilation - 1) / p.dilation;
    std::int64_t kw1 = p.width - iw0 <= 0 ? 0 : (p.width - iw0 + p.dilation - 1) / p.dilation;
    if (kw1 > p.kw) kw1 = p.kw;
    if (kw0 > kw1) kw0 = kw1;
    single(ow, kw0, kw1);
  }
}

// Streaming stores only for whole aligned vectors: every position's channel
// run must start on a vector boundary (tails and partial vectors keep plain
// stores).
template <class V>
bool row_can_stream(const volconv::cpu::DwconvParams& p) {
  return V::kHasStream && p.stream && p.y_step % V::L == 0 &&
         reinterpret_cast<std::uintptr_t>(p.y) % (4 * V::L) == 0;
}

}  // namespace
