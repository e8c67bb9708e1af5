#include "output_blocks.h"

#include <cstdlib>
#include <new>

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#endif

namespace volconv::detail {

void* OutputBlocks::take(std::size_t bytes) {
  bytes = bytes == 0 ? kOutputAlignment : (bytes + kOutputAlignment - 1) / kOutputAlignment * kOutputAlignment;
  {
    std::lock_guard<ForkSafeMutex> lock(mutex_);
    // The smallest cached block that fits and wastes at most a quarter.
    std::size_t best = blocks_.size();
    for (std::size_t i = 0; i < blocks_.size(); ++i)
      if (blocks_[i].bytes >= bytes && blocks_[i].bytes - bytes <= bytes / 4 &&
          (best == blocks_.size() || blocks_[i].bytes < blocks_[best].bytes))
        best = i;
    if (best < blocks_.size()) {
      const Block b = blocks_[best];
      blocks_.erase(blocks_.begin() + std::ptrdiff_t(best));
      cached_ -= b.bytes;
      sizes_[b.data] = b.bytes;
      return b.data;
    }
  }
  const bool huge = bytes >= kHugePage;
  void* data = nullptr;
  if (posix_memalign(&data, huge ? kHugePage : kOutputAlignment, bytes) != 0) throw std::bad_alloc();
#if defined(MADV_HUGEPAGE)
  if (huge) madvise(data, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
  std::lock_guard<ForkSafeMutex> lock(mutex_);
  sizes_[data] = bytes;
  return data;
}

void OutputBlocks::give(void* data) noexcept {
  std::lock_guard<ForkSafeMutex> lock(mutex_);
  const auto it = sizes_.find(data);
  const std::size_t bytes = it->second;
  sizes_.erase(it);
  if (bytes < kMinCached || bytes > kMaxCachedBytes) {
    std::free(data);
    return;
  }
  // Keep the newest blocks: drop the oldest until this one fits the caps.
  while (!blocks_.empty() && (blocks_.size() >= kMaxBlocks || cached_ + bytes > kMaxCachedBytes)) {
    std::free(blocks_.front().data);
    cached_ -= blocks_.front().bytes;
    blocks_.erase(blocks_.begin());
  }
  blocks_.push_back(Block{data, bytes});
  cached_ += bytes;
}

// Never destroyed: arrays may outlive the module at interpreter exit.
OutputBlocks& output_blocks() {
  static OutputBlocks* blocks = new OutputBlocks;
  return *blocks;
}

}  // namespace volconv::detail
