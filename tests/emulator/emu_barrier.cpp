#include "emu_barrier.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace emu {
namespace {

constexpr int kYieldRounds = 4;

// Raw futex calls: ThreadSanitizer does not see them as synchronisation, so
// the only happens-before edges a barrier creates are its atomics' orders.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::chrono::nanoseconds timeout) {
  timespec ts{time_t(timeout.count() / 1000000000), long(timeout.count() % 1000000000)};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace

Barrier::Outcome Barrier::wait(bool orders_memory, std::chrono::milliseconds timeout) {
  const auto load_order = orders_memory ? std::memory_order_acquire : std::memory_order_relaxed;
  const std::uint32_t start = word_.load(load_order);
  if (start & kAborted) return Outcome::aborted;
  if (start & kLeft) return Outcome::thread_left;
  const std::uint64_t arrived =
      arrivals_.fetch_add(1, orders_memory ? std::memory_order_acq_rel : std::memory_order_relaxed) + 1;
  if (arrived % count_ == 0) {
    word_.fetch_add(1, orders_memory ? std::memory_order_release : std::memory_order_relaxed);
    futex_wake_all(&word_);
    return Outcome::passed;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int round = 0;; ++round) {
    const std::uint32_t now_word = word_.load(load_order);
    // A new generation first: a thread that left after this phase completed
    // (the legal early return after a kernel's last barrier) is no error.
    if ((now_word ^ start) & kGeneration) return Outcome::passed;
    if (now_word & kAborted) return Outcome::aborted;
    if (now_word & kLeft) return Outcome::thread_left;
    // Give the core to the threads still on their way a few times before
    // sleeping: most phases complete within a few time slices, and a futex
    // sleep and wake-up cost far more than a yield.
    if (round < kYieldRounds) {
      sched_yield();
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Outcome::timed_out;
    futex_wait(&word_, now_word, deadline - now);
  }
}

void Barrier::leave(unsigned tid) {
  int none = -1;
  left_tid_.compare_exchange_strong(none, int(tid), std::memory_order_relaxed);
  word_.fetch_or(kLeft, std::memory_order_relaxed);
  futex_wake_all(&word_);
}

void Barrier::abort() {
  word_.fetch_or(kAborted, std::memory_order_relaxed);
  futex_wake_all(&word_);
}

void Barrier::reset() {
  arrivals_.store(0, std::memory_order_relaxed);
  word_.store(0, std::memory_order_relaxed);
  left_tid_.store(-1, std::memory_order_relaxed);
}

}  // namespace emu
