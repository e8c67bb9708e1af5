#include "fork_safe_mutex.h"

#include <atomic>
#include <cstdlib>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace volconv::detail {
namespace {

// Every ForkSafeMutex is a process-wide object (a static or a function-local
// static), so a fixed table suffices; a slot is published before the count
// that makes it visible.
constexpr int kMaxMutexes = 16;
ForkSafeMutex* g_mutexes[kMaxMutexes];
std::atomic<int> g_count{0};
std::atomic<int> g_reserved{0};

void lock_all() {
  const int n = g_count.load(std::memory_order_acquire);
  for (int i = 0; i < n; ++i) g_mutexes[i]->lock();
}

void unlock_all() {
  const int n = g_count.load(std::memory_order_acquire);
  for (int i = n - 1; i >= 0; --i) g_mutexes[i]->unlock();
}

void register_handlers() {
#if defined(__unix__) || defined(__APPLE__)
  static const bool registered = pthread_atfork(lock_all, unlock_all, unlock_all) == 0;
  (void)registered;
#endif
}

}  // namespace

ForkSafeMutex::ForkSafeMutex() {
  register_handlers();
  const int slot = g_reserved.fetch_add(1);
  if (slot >= kMaxMutexes) std::abort();  // a programming error: raise kMaxMutexes
  g_mutexes[slot] = this;
  // Publish in slot order, so lock_all never sees a slot still being filled.
  int expected = slot;
  while (!g_count.compare_exchange_weak(expected, slot + 1, std::memory_order_release)) expected = slot;
}

}  // namespace volconv::detail
