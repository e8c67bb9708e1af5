// Page-aligned output buffers for the arrays volconv allocates itself (the
// Python module's results), with a small cache of freed blocks.
#pragma once

#include <cstddef>
#include <unordered_map>
#include <vector>

#include "fork_safe_mutex.h"

namespace volconv::detail {

// 16 KiB: the VM page of Apple silicon, so Metal can adopt an output
// (newBufferWithBytesNoCopy) and numpy/torch can own it, without a copy.
inline constexpr std::size_t kOutputAlignment = 16384;

// Output blocks. A fresh large block comes from mmap (above glibc's mmap
// threshold), and the kernel then faults in and zeroes every page on first
// write: for a cheap conv that was about half its time. So freed blocks are
// kept in a small cache (a few blocks, a byte cap) and handed to the next
// output of a size they fit without much waste; fresh large blocks are
// 2 MiB-aligned and advised as huge pages, so first touch costs 1/512 of
// the faults. Every block stays 16 KiB-aligned and owned by its array.
class OutputBlocks {
 public:
  // A block of at least `bytes` (rounded up to a multiple of
  // kOutputAlignment, at least one), aligned to it.
  void* take(std::size_t bytes);
  // Returns a block from take(); it may be cached for a later take().
  void give(void* data) noexcept;

 private:
  struct Block {
    void* data;
    std::size_t bytes;
  };
  static constexpr std::size_t kHugePage = std::size_t(2) << 20;
  static constexpr std::size_t kMinCached = std::size_t(256) << 10;  // smaller ones come from the heap anyway
  static constexpr std::size_t kMaxCachedBytes = std::size_t(128) << 20;
  static constexpr std::size_t kMaxBlocks = 4;
  ForkSafeMutex mutex_;
  std::vector<Block> blocks_;
  std::size_t cached_ = 0;
  std::unordered_map<void*, std::size_t> sizes_;  // every block handed out, by address
};

// The process-wide cache.
OutputBlocks& output_blocks();

}  // namespace volconv::detail
