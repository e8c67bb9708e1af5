// A GPU barrier for a fixed number of OS threads, as the emulator's kernels
// meet it: threadgroup_barrier / simdgroup_barrier and the simdgroup
// exchanges. Waiters sleep on a futex (dozens of threads share two cores, so
// spinning would starve those still on their way). It reports rather than
// hangs when a thread returns from the kernel while others wait, and after a
// timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace emu {

class Barrier {
 public:
  enum class Outcome { passed, thread_left, aborted, timed_out };

  explicit Barrier(unsigned count) : count_(count) {}

  // Waits until all `count` threads arrived. orders_memory: acquire/release,
  // so ThreadSanitizer sees everything written before the barrier as
  // happening before everything read after it; false (mem_none): relaxed
  // atomics only, so it orders no memory and a race across it is reported.
  Outcome wait(bool orders_memory, std::chrono::milliseconds timeout);

  // Thread `tid` returned from the kernel: it will never arrive again, so
  // anyone waiting here (or arriving later) gets thread_left.
  void leave(unsigned tid);
  // Every waiter returns `aborted` (another thread failed).
  void abort();
  // Between threadgroups, with no thread inside.
  void reset();

  int left_tid() const { return left_tid_.load(std::memory_order_relaxed); }
  // Threads waiting in the current phase (for diagnostics).
  unsigned waiting() const { return unsigned(arrivals_.load(std::memory_order_relaxed) % count_); }
  unsigned count() const { return count_; }

 private:
  static constexpr std::uint32_t kLeft = 1u << 31;
  static constexpr std::uint32_t kAborted = 1u << 30;
  static constexpr std::uint32_t kGeneration = kAborted - 1;

  const unsigned count_;
  std::atomic<std::uint64_t> arrivals_{0};  // monotonic: no reset between phases
  std::atomic<std::uint32_t> word_{0};      // generation | flags; the futex word
  std::atomic<int> left_tid_{-1};
};

}  // namespace emu
