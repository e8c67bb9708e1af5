// Converted rows of the depthwise drivers (dw_data.cpp, dw_weight_grad.cpp),
// kept while consecutive output rows reuse them: each input row serves up to
// KD x KH output rows. A slot handed out for the current output row is never
// reused before the next begin_row(), so all of a row's pointers stay valid.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace volconv::cpu {

template <class A>
class DwRowCache {
 public:
  // slots > the rows one output row reads; row_len elements per row.
  DwRowCache(std::int64_t slots, std::int64_t row_len)
      : row_len_(row_len), data_(std::size_t(slots * row_len)), key_(std::size_t(slots), -1),
        stamp_(std::size_t(slots), 0) {}

  void begin_row() { ++clock_; }
  void clear() { std::fill(key_.begin(), key_.end(), -1); }

  // The slot of row `key`; hit says whether it already holds that row.
  A* slot(std::int64_t key, bool& hit) {
    // Where the key was last put, checked first: a hit costs one compare
    // instead of a scan of every slot (with few channels the scans cost as
    // much as the convolution); the key check keeps a stale hint harmless.
    std::size_t& hint = hint_[std::size_t(key ^ (key >> 6)) % kHints];
    if (hint < key_.size() && key_[hint] == key) {
      stamp_[hint] = clock_;
      hit = true;
      return data_.data() + std::int64_t(hint) * row_len_;
    }
    std::size_t oldest = 0;
    for (std::size_t i = 0; i < key_.size(); ++i) {
      if (key_[i] == key) {
        stamp_[i] = clock_;
        hit = true;
        hint = i;
        return data_.data() + std::int64_t(i) * row_len_;
      }
      if (stamp_[i] < stamp_[oldest]) oldest = i;
    }
    key_[oldest] = key;
    stamp_[oldest] = clock_;
    hit = false;
    hint = oldest;
    return data_.data() + std::int64_t(oldest) * row_len_;
  }

 private:
  static constexpr std::size_t kHints = 64;
  std::int64_t row_len_, clock_ = 1;
  std::vector<A> data_;
  std::vector<std::int64_t> key_, stamp_;
  std::size_t hint_[kHints] = {};
};

}  // namespace volconv::cpu
