#include "input_relayout.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "volconv/out_of_memory.h"
#include "thread_pool.h"

namespace volconv::cpu {
namespace {

// Positions x channels per block: a block's source lines (kBlock channels of
// kBlock positions) and its destination stay in L1 while it is transposed.
constexpr std::int64_t kBlock = 16;

// The input as rows x C x P (P positions per row at stride ps): the spatial
// dims are merged while each one steps exactly over the next, so the NCDHW
// case is one C x (D*H*W) transpose per batch item and short W rows do not
// make short blocks.
struct Layout {
  std::int64_t rows, C, P;
  std::int64_t cs, ps;  // channel and position strides (elements)
  int merged;           // spatial dims folded into P: 1 (W), 2 (H, W) or 3
};

Layout layout_of(const ConstTensorView& v) {
  const Shape5& s = v.shape;
  const Shape5& st = v.strides;
  int merged = 1;
  if (st[2] == st[3] * s[3]) {
    merged = 2;
    if (st[1] == st[2] * s[2]) merged = 3;
  }
  std::int64_t P = s[3], rows = s[0] * s[1] * s[2];
  if (merged >= 2) P *= s[2], rows /= std::max<std::int64_t>(1, s[2]);
  if (merged == 3) P *= s[1], rows /= std::max<std::int64_t>(1, s[1]);
  return Layout{rows, s[4], P, st[4], st[3], merged};
}

template <class T>
void transpose_rows(const ConstTensorView& v, const Layout& l, T* dst) {
  // Read through memcpy: the caller's elements may sit at unaligned addresses.
  const auto* src = static_cast<const unsigned char*>(v.data);
  const Shape5& s = v.shape;
  const Shape5& st = v.strides;
  const std::int64_t p_blocks = (l.P + kBlock - 1) / kBlock;
  // Work items (row, block of positions); each writes its own P-block of dst.
  parallel_for(l.rows * p_blocks, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t it = begin; it < end; ++it) {
      const std::int64_t row = it / p_blocks, p0 = (it % p_blocks) * kBlock, p1 = std::min(l.P, p0 + kBlock);
      // The row's source offset: row = (n, d, h) with the merged dims dropped.
      std::int64_t base;
      if (l.merged == 3) {
        base = row * st[0];
      } else if (l.merged == 2) {
        base = (row / s[1]) * st[0] + (row % s[1]) * st[1];
      } else {
        base = (row / (s[1] * s[2])) * st[0] + (row / s[2] % s[1]) * st[1] + (row % s[2]) * st[2];
      }
      T* out = dst + (row * l.P) * l.C;
      for (std::int64_t c0 = 0; c0 < l.C; c0 += kBlock) {
        const std::int64_t c1 = std::min(l.C, c0 + kBlock);
        for (std::int64_t p = p0; p < p1; ++p) {
          const unsigned char* in = src + (base + p * l.ps + c0 * l.cs) * std::int64_t(sizeof(T));
          T* o = out + p * l.C + c0;
          for (std::int64_t c = 0; c < c1 - c0; ++c)
            std::memcpy(o + c, in + c * l.cs * std::int64_t(sizeof(T)), sizeof(T));
        }
      }
    }
  });
}

}  // namespace

namespace {
std::atomic<std::int64_t> g_relayouts{0};
}

namespace testing {
std::int64_t relayout_count() { return g_relayouts.load(); }
}  // namespace testing

bool needs_channel_relayout(const ConstTensorView& input) {
  return input.shape[4] > 1 && input.strides[4] != 1 && numel(input.shape) > 0;
}

ConstTensorView relayout_channels_last(const ConstTensorView& input, std::unique_ptr<unsigned char[]>& buf) {
  const std::size_t esize = dtype_size(input.dtype), bytes = std::size_t(numel(input.shape)) * esize + 64;
  // Not zero-filled: the transpose writes every element, and its threads
  // touch the fresh pages first (a serial fill cost more than the copy).
  try {
    buf.reset(new unsigned char[bytes]);
  } catch (const std::bad_alloc&) {
    throw OutOfMemory("", bytes, "the relaid-out input");  // the op's name is added by the front door
  }
  // 64-byte aligned start: the kernels' loads then split no more lines than on a fresh array.
  const auto addr = reinterpret_cast<std::uintptr_t>(buf.get());
  void* dst = buf.get() + ((64 - addr % 64) % 64);
  const Layout l = layout_of(input);
  g_relayouts.fetch_add(1, std::memory_order_relaxed);
  switch (esize) {
    case 2: transpose_rows(input, l, static_cast<std::uint16_t*>(dst)); break;
    case 4: transpose_rows(input, l, static_cast<std::uint32_t*>(dst)); break;
    default: transpose_rows(input, l, static_cast<std::uint64_t*>(dst)); break;
  }
  return ConstTensorView::contiguous(dst, input.dtype, input.shape);
}

}  // namespace volconv::cpu
