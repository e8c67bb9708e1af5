// The pool behind parallel_for. Workers sleep on a condition variable
// between calls; each call publishes a generation number, and worker i runs
// chunk i + 1. The pool object is never destroyed (threads blocked at exit
// are harmless) and is rebuilt after fork(), whose child has no workers.
#include "thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "platform.h"
#include "volconv/cpu.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace volconv::cpu {
namespace {

int default_threads() { return platform::default_thread_count(); }

// Kernels write large outputs with non-temporal stores, which other cores
// may see late: fence once per chunk (not per tile: an sfence waits for the
// write-combining buffers to drain) before the chunk counts as done.
void fence_streaming_stores() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  _mm_sfence();
#endif
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads), pid_(getpid()) {}

  int threads() const { return threads_; }
  void set_threads(int n) { threads_ = n; }
  bool owned_by_this_process() const { return pid_ == getpid(); }

  void run(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
    const int chunks = int(std::min<std::int64_t>(n, threads_));
    std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
    if (chunks <= 1 || !call.owns_lock()) {
      fn(0, n);  // same results: the split never changes what each output sums
      fence_streaming_stores();
      return;
    }
    grow(chunks - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    start_.notify_all();
    std::exception_ptr mine;
    try {
      fn(0, chunk_end(0));
    } catch (...) {
      mine = std::current_exception();
    }
    fence_streaming_stores();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    fn_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::int64_t chunk_end(int i) const { return n_ * (i + 1) / chunks_; }

  void grow(int workers) {
    while (int(workers_.size()) < workers) {
      const int index = int(workers_.size());
      // The worker must see the coming generation as new, whenever it starts.
      std::uint64_t seen;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        seen = generation_;
      }
      workers_.emplace_back([this, index, seen] { work(index + 1, seen); });
      workers_.back().detach();
    }
  }

  void work(int chunk, std::uint64_t seen) {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (chunk >= chunks_) continue;
      const auto* fn = fn_;
      const std::int64_t begin = n_ * chunk / chunks_, end = chunk_end(chunk);
      lock.unlock();
      std::exception_ptr err;
      try {
        (*fn)(begin, end);
      } catch (...) {
        err = std::current_exception();
      }
      fence_streaming_stores();
      lock.lock();
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::atomic<int> threads_;
  pid_t pid_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> workers_;
  std::uint64_t generation_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0;
  int chunks_ = 0, pending_ = 0;
  std::exception_ptr error_;
};

std::mutex g_pool_mutex;
Pool* g_pool = nullptr;  // leaked on purpose (see the file comment)
int g_requested = 0;     // set_num_threads; 0 = default

Pool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool == nullptr || !g_pool->owned_by_this_process())
    g_pool = new Pool(g_requested > 0 ? g_requested : default_threads());
  return *g_pool;
}

}  // namespace

void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  pool().run(n, fn);
}

void set_num_threads(int n) {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_requested = n > 0 ? n : 0;
  p.set_threads(n > 0 ? n : default_threads());
}

int get_num_threads() { return pool().threads(); }

}  // namespace volconv::cpu
