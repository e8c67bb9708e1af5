// parallel_pieces (csrc/cpu/thread_pool.h): every index of [0, n) is handed
// out exactly once, in contiguous pieces of at least min_piece (but the
// last, and when n is small for the threads), on min(threads, n) threads;
// and a thread that arrives
// late finds the work already taken by the others instead of a fixed share
// waiting for it.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../../csrc/cpu/thread_pool.h"
#include "check.h"
#include "volconv/cpu.h"

using namespace volconv;

namespace {

void covers_each_index_once(int threads, std::int64_t n, std::int64_t min_piece) {
  cpu::set_num_threads(threads);
  std::vector<std::atomic<int>> hits(std::size_t(n + 64));
  std::vector<std::pair<std::int64_t, std::int64_t>> pieces;
  std::mutex mutex;
  std::atomic<int> bodies{0};
  cpu::parallel_pieces(n, min_piece, [&](cpu::Pieces& q) {
    bodies.fetch_add(1);
    std::int64_t b = 0, e = 0;
    while (q.next(b, e)) {
      for (std::int64_t i = b; i < e; ++i) hits[std::size_t(std::min(i, n + 63))].fetch_add(1);
      std::lock_guard<std::mutex> lock(mutex);
      pieces.emplace_back(b, e);
    }
  });
  const std::string what = std::to_string(threads) + " threads, n " + std::to_string(n);
  for (std::int64_t i = 0; i < n + 64; ++i)
    if (hits[std::size_t(i)].load() != (i < n ? 1 : 0)) {
      check::fail(__FILE__, __LINE__, what + ": index " + std::to_string(i) + " ran " +
                                          std::to_string(hits[std::size_t(i)].load()) + " times");
      break;
    }
  // Every thread runs when there are enough items for all (a few costly
  // items must not wait for each other on fewer threads).
  CHECK(bodies.load() == std::min<std::int64_t>(threads, n));
  std::sort(pieces.begin(), pieces.end());
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    CHECK(pieces[k].first < pieces[k].second);
    CHECK(pieces[k].first == (k == 0 ? 0 : pieces[k - 1].second));
    if (k + 1 < pieces.size() && n >= 4 * threads * min_piece) CHECK(pieces[k].second - pieces[k].first >= min_piece);
  }
}

// Two threads: whichever body runs first waits until the other has taken
// every piece; it must then get none (a static split would have left half
// the work to it).
void late_thread_takes_nothing() {
  cpu::set_num_threads(2);
  std::atomic<int> arrivals{0}, taken_by_late{0};
  std::atomic<bool> drained{false}, waited_out{false};
  cpu::parallel_pieces(1000, 1, [&](cpu::Pieces& q) {
    const bool late = arrivals.fetch_add(1) == 0;
    if (late) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!drained.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      waited_out.store(!drained.load());
    }
    std::int64_t b = 0, e = 0;
    while (q.next(b, e))
      if (late) taken_by_late.fetch_add(int(e - b));
    if (!late) drained.store(true);
  });
  CHECK(arrivals.load() == 2);
  CHECK(!waited_out.load());
  CHECK(taken_by_late.load() == 0);
}

}  // namespace

int main() {
  for (int threads : {1, 2, 3, 4})
    for (std::int64_t n : {0, 1, 5, 16, 17, 1000, 12345})
      for (std::int64_t min_piece : {1, 16}) covers_each_index_once(threads, n, min_piece);
  late_thread_takes_nothing();
  cpu::set_num_threads(0);
  return check::result("test_parallel_pieces");
}
