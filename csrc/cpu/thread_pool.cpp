// The pool behind parallel_for, and the choice of where a call's chunks run:
// through a caller's executor when one is set, else on the OpenMP team of a
// runtime already in the process (openmp_runtime.h says why), else on our
// own workers. Each worker sleeps on its own condition variable, so a call
// wakes only the workers it uses; worker i runs chunk i + 1. Lowering the
// thread count ends the surplus workers. The pool object is never destroyed
// (threads blocked at exit are harmless); a fork() child, which has no
// workers and may inherit locked mutexes, gets a fresh pool and fresh locks
// from a pthread_atfork handler.
#include "thread_pool.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "openmp_runtime.h"
#include "platform.h"
#include "volconv/cpu.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace volconv::cpu {
namespace {

// Threads beyond a few per CPU only add switching; the cap also bounds what
// a typo in set_num_threads or VOLCONV_NUM_THREADS can create.
constexpr int kThreadsPerCpu = 4;

int cpus_available() { return platform::available_cpus(); }

int thread_cap() { return kThreadsPerCpu * cpus_available(); }

// Say something on stderr once per kind of event per process.
void note_once(std::atomic<bool>& said, const std::string& message) {
  if (!said.exchange(true)) std::fprintf(stderr, "%s\n", message.c_str());
}

std::atomic<bool> g_said_env{false}, g_said_cap{false}, g_said_spawn{false};
std::atomic<const char*> g_last_route{"none"};

// VOLCONV_NUM_THREADS: a whole decimal number >= 1 and nothing else, else
// ignored (with a note); above the cap, clamped.
int default_threads() {
  const int cap = thread_cap();
  if (const char* env = std::getenv("VOLCONV_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(env, &end, 10);
    if (errno == 0 && end != env && *end == '\0' && n >= 1) {
      if (n <= cap) return int(n);
      note_once(g_said_env, "[volconv] VOLCONV_NUM_THREADS=" + std::string(env) + " is above " +
                                std::to_string(kThreadsPerCpu) + " threads per CPU this process may run on; using " +
                                std::to_string(cap) + ".");
      return cap;
    }
    note_once(g_said_env, "[volconv] Ignoring VOLCONV_NUM_THREADS=" + std::string(env) +
                              ": expected a positive whole number. Using the " + std::to_string(cpus_available()) +
                              " CPUs this process may run on.");
  }
  return std::min(cpus_available(), cap);
}

// Kernels write large outputs with non-temporal stores, which other cores
// may see late: fence once per chunk (not per tile: an sfence waits for the
// write-combining buffers to drain) before the chunk counts as done.
void fence_streaming_stores() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  _mm_sfence();
#endif
}

// set_parallel_executor's; kept with the pid that set it, since a fork()
// child has none of the host's threads. Leaked, like the pool (a daemon
// thread may still read it at exit).
std::mutex* g_executor_mutex = new std::mutex;
auto* g_executor = new std::shared_ptr<const ParallelExecutor>;
pid_t g_executor_pid = 0;

std::shared_ptr<const ParallelExecutor> executor_for_this_process() {
  std::lock_guard<std::mutex> lock(*g_executor_mutex);
  return g_executor_pid == getpid() ? *g_executor : nullptr;
}

class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {}

  int threads() const { return threads_; }

  // Waits for a running call, then ends the workers the new count leaves idle.
  void set_threads(int n) {
    std::lock_guard<std::mutex> call(call_mutex_);
    threads_ = n;
    shrink(n - 1);
  }

  void run(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
    int chunks = int(std::min<std::int64_t>(n, threads_));
    std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
    if (chunks <= 1 || !call.owns_lock()) {
      fn(0, n);  // same results: the split never changes what each output sums
      fence_streaming_stores();
      g_last_route.store("caller");
      return;
    }
    if (const std::shared_ptr<const ParallelExecutor> executor = executor_for_this_process()) {
      run_through(*executor, n, chunks, fn);
      g_last_route.store("executor");
      return;
    }
    if (const openmp::Runtime* omp = openmp::usable_runtime()) {
      run_through([omp](int c, const std::function<void(int)>& body) { openmp::run_chunks(*omp, c, body); }, n,
                  chunks, fn);
      g_last_route.store("openmp");
      return;
    }
    chunks = std::min(chunks, grow(chunks - 1) + 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      chunks_ = chunks;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
      for (int i = 0; i < chunks - 1; ++i) workers_[std::size_t(i)]->go = generation_;
    }
    for (int i = 0; i < chunks - 1; ++i) workers_[std::size_t(i)]->wake.notify_one();
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
    g_last_route.store("pool");
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Worker {
    std::condition_variable wake;
    std::uint64_t go = 0;  // the generation this worker is to run
    bool stop = false;
    std::thread thread;
  };

  std::int64_t chunk_end(int i) const { return n_ * (i + 1) / chunks_; }

  // The same chunks as on the pool, run by `launch` (an executor or the
  // OpenMP team); the first failing chunk's exception (by index) is rethrown
  // once all are done.
  static void run_through(const ParallelExecutor& launch, std::int64_t n, int chunks,
                          const std::function<void(std::int64_t, std::int64_t)>& fn) {
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(chunks));
    std::atomic<int> ran{0};
    launch(chunks, [&](int i) {
      try {
        fn(n * i / chunks, n * (i + 1) / chunks);
      } catch (...) {
        errors[std::size_t(i)] = std::current_exception();
      }
      fence_streaming_stores();
      ran.fetch_add(1, std::memory_order_relaxed);
    });
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    if (ran.load() != chunks)
      throw std::runtime_error("[conv3d] The parallel executor returned after running " + std::to_string(ran.load()) +
                               " of " + std::to_string(chunks) + " chunks; it must run each once.");
  }

  // Starts workers up to `count` (call_mutex_ held); returns how many exist.
  // When the system refuses a thread, the call runs on those that started.
  int grow(int count) {
    while (int(workers_.size()) < count) {
      const int chunk = int(workers_.size()) + 1;
      auto w = std::make_unique<Worker>();
      Worker* self = w.get();
      try {
        w->thread = std::thread([this, chunk, self] { work(chunk, *self); });
      } catch (const std::system_error& e) {
        note_once(g_said_spawn, std::string("[conv3d] Could not start more than ") +
                                    std::to_string(workers_.size()) + " worker threads (" + e.what() +
                                    "); running on the threads that started.");
        break;
      }
      workers_.push_back(std::move(w));
    }
    return int(workers_.size());
  }

  // Ends workers past `count` and waits for them (call_mutex_ held, so no
  // call is running).
  void shrink(int count) {
    const std::size_t keep = std::size_t(std::max(count, 0));
    if (workers_.size() <= keep) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (std::size_t i = keep; i < workers_.size(); ++i) workers_[i]->stop = true;
    }
    for (std::size_t i = keep; i < workers_.size(); ++i) {
      workers_[i]->wake.notify_one();
      workers_[i]->thread.join();
    }
    workers_.resize(keep);
  }

  void work(int chunk, Worker& self) {
    std::uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      self.wake.wait(lock, [&] { return self.stop || self.go != seen; });
      if (self.stop) return;
      seen = self.go;
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
  std::mutex call_mutex_;  // one parallel_for (or resize) at a time
  std::mutex mutex_;       // guards the job below and the workers' go/stop
  std::condition_variable done_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::uint64_t generation_ = 0;
  const std::function<void(std::int64_t, std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0;
  int chunks_ = 0, pending_ = 0;
  std::exception_ptr error_;
};

// Pools and mutexes are leaked on purpose (see the file comment): a child
// process replaces both, whatever state the parent's threads left them in.
std::atomic<Pool*> g_pool{nullptr};
std::atomic<pid_t> g_pool_pid{0};
std::mutex* g_pool_mutex = new std::mutex;
int g_requested = 0;  // set_num_threads; 0 = default

void reset_after_fork() {
  g_pool_mutex = new std::mutex;
  g_executor_mutex = new std::mutex;
  g_pool.store(nullptr);
  g_pool_pid.store(0);
}
[[maybe_unused]] const bool g_reset_registered = pthread_atfork(nullptr, nullptr, reset_after_fork) == 0;

Pool& pool() {
  // The pid check, without the lock, also covers a child of a raw clone()
  // that ran no atfork handler.
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p != nullptr && g_pool_pid.load(std::memory_order_acquire) == getpid()) return *p;
  std::lock_guard<std::mutex> lock(*g_pool_mutex);
  p = g_pool.load();
  if (p == nullptr || g_pool_pid.load() != getpid()) {
    p = new Pool(g_requested > 0 ? g_requested : default_threads());
    g_pool.store(p, std::memory_order_release);
    g_pool_pid.store(getpid(), std::memory_order_release);
  }
  return *p;
}

}  // namespace

void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  pool().run(n, fn);
}

void parallel_pieces(std::int64_t n, std::int64_t min_piece, const std::function<void(Pieces&)>& body) {
  if (n <= 0) return;
  // Every thread gets work when there are at least as many items as threads:
  // a few costly items (a small volume with wide channels) must not run on
  // fewer threads because of min_piece.
  const int threads = int(std::min<std::int64_t>(pool().threads(), n));
  Pieces pieces(n, threads, std::clamp<std::int64_t>(n / (4 * std::int64_t(threads)), 1, std::max<std::int64_t>(min_piece, 1)));
  parallel_for(threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t t = begin; t < end; ++t) body(pieces);
  });
}

void set_num_threads(int n) {
  Pool& p = pool();
  const int cap = thread_cap();
  if (n > cap) {
    note_once(g_said_cap, "[set_num_threads] " + std::to_string(n) + " threads is above " +
                              std::to_string(kThreadsPerCpu) + " per CPU this process may run on; using " +
                              std::to_string(cap) + ".");
    n = cap;
  }
  {
    std::lock_guard<std::mutex> lock(*g_pool_mutex);
    g_requested = n > 0 ? n : 0;
  }
  p.set_threads(n > 0 ? n : default_threads());
}

int get_num_threads() { return pool().threads(); }

void set_parallel_executor(ParallelExecutor executor) {
  auto shared = executor ? std::make_shared<const ParallelExecutor>(std::move(executor)) : nullptr;
  std::lock_guard<std::mutex> lock(*g_executor_mutex);
  *g_executor = std::move(shared);
  g_executor_pid = getpid();
}

namespace testing {
std::string last_parallel_route() { return g_last_route.load(); }
}  // namespace testing

}  // namespace volconv::cpu
