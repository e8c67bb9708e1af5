// parallel_for: the CPU backend's one way to run work on several threads.
// It runs through the caller's executor when one is set
// (set_parallel_executor), else on the OpenMP team of a runtime another
// library already loaded (PyTorch's) when there is one, else on a persistent
// pool of our own; it
// never loads an OpenMP runtime (two in one process are a known source of
// crashes, e.g. on macOS next to PyTorch).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace volconv::cpu {

// Splits [0, n) statically into at most get_num_threads() contiguous chunks,
// in order, and runs fn(begin, end) for each, one chunk per thread (the
// caller runs the first). Returns when all are done; rethrows the first
// exception. A nested or concurrent call runs its chunks on the caller.
void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

// [0, n) handed out in contiguous pieces to whichever thread asks next:
// long pieces first (a thread streams a long run of work), shorter ones
// toward the end (at least min_piece), so a thread that starts late or is
// preempted (another process, a host's spinning OpenMP workers) delays the
// call by one short piece instead of its whole static share.
class Pieces {
 public:
  Pieces(std::int64_t n, int threads, std::int64_t min_piece)
      : n_(n), parts_(2 * std::int64_t(threads > 0 ? threads : 1)), min_piece_(min_piece > 0 ? min_piece : 1) {}
  // The next piece [begin, end); false when all are handed out.
  bool next(std::int64_t& begin, std::int64_t& end) {
    std::int64_t b = next_.load(std::memory_order_relaxed);
    for (;;) {
      if (b >= n_) return false;
      const std::int64_t piece = std::max(min_piece_, (n_ - b) / parts_);
      const std::int64_t e = n_ - b > piece ? b + piece : n_;
      if (next_.compare_exchange_weak(b, e, std::memory_order_relaxed)) {
        begin = b;
        end = e;
        return true;
      }
    }
  }

 private:
  std::int64_t n_, parts_, min_piece_;
  std::atomic<std::int64_t> next_{0};
};

// Runs body(pieces) once on each of min(get_num_threads(), n) threads; each
// takes pieces of [0, n) until none is left. Pieces are at least min_piece
// long, or shorter when n is small for the thread count (each thread still
// gets about four). The work an item does must not depend on which thread or
// piece runs it (then results are the same for any thread count and timing).
void parallel_pieces(std::int64_t n, std::int64_t min_piece, const std::function<void(Pieces&)>& body);

namespace testing {
// Where the last parallel_for with n > 0 ran: "executor", "openmp", "pool" or "caller".
std::string last_parallel_route();
}  // namespace testing

}  // namespace volconv::cpu
