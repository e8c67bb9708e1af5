// A mutex that a fork() child always inherits unlocked. Python programs fork
// while other threads are inside conv3d (DataLoader workers); a lock held by
// one of those threads at the fork would stay locked forever in the child.
// Before a fork, the forking thread takes every such mutex (so no other
// thread is inside its critical section); after it, parent and child each
// release them. For the few short locks a call passes through; none of them
// is taken while another is held, so taking them all in order cannot
// deadlock.
#pragma once

#include <mutex>

namespace volconv::detail {

class ForkSafeMutex {
 public:
  ForkSafeMutex();
  ForkSafeMutex(const ForkSafeMutex&) = delete;
  ForkSafeMutex& operator=(const ForkSafeMutex&) = delete;
  void lock() { mutex_.lock(); }
  void unlock() { mutex_.unlock(); }

 private:
  std::mutex mutex_;
};

}  // namespace volconv::detail
