// Releasing the GIL around a kernel, safely at interpreter exit.
//
// nb::gil_scoped_release re-takes the GIL in its destructor. On Python
// <= 3.13, a thread that re-takes the GIL while the interpreter finalizes is
// ended with pthread_exit, whose forced unwind through that noexcept
// destructor aborts the whole process ("terminate called without an active
// exception"): a daemon thread inside conv3d at exit killed every program.
// GilRelease instead blocks such a thread until the process exits (as PyO3
// does). The interpreter's finalizing flag alone leaves a window: a thread
// that checked it, then waits for the GIL while finalization starts, is
// still ended. So an atexit callback (atexit runs before finalization, with
// the GIL) raises our own flag and then lets go of the GIL until every
// thread already past the check has taken it; a thread that comes later
// sees the flag and blocks.
#pragma once

#include <Python.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace volconv::python {

inline std::atomic<bool>& interpreter_exiting() {
  static std::atomic<bool> exiting{false};
  return exiting;
}

// Threads between checking the flags and holding the GIL again.
inline std::atomic<int>& threads_retaking_gil() {
  static std::atomic<int> n{0};
  return n;
}

// Called from the module's atexit callback, with the GIL held.
inline void note_interpreter_exiting() {
  interpreter_exiting().store(true);
  while (threads_retaking_gil().load() > 0) {
    Py_BEGIN_ALLOW_THREADS std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Py_END_ALLOW_THREADS
  }
}

class GilRelease {
 public:
  GilRelease() : state_(PyEval_SaveThread()) {}
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;
  ~GilRelease() {
    // Counted before the check (both sequentially consistent): either the
    // atexit callback waits for this thread, or this thread sees the flag.
    threads_retaking_gil().fetch_add(1);
    if (interpreter_exiting().load() || finalizing()) {
      threads_retaking_gil().fetch_sub(1);
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    }
    PyEval_RestoreThread(state_);
    threads_retaking_gil().fetch_sub(1);
  }

 private:
  static bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
  }
  PyThreadState* state_;
};

}  // namespace volconv::python
