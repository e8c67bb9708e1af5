// Releasing the GIL around a kernel, safely at interpreter exit.
//
// nb::gil_scoped_release re-takes the GIL in its destructor. On Python
// <= 3.13, a thread that re-takes the GIL while the interpreter finalizes is
// ended with pthread_exit, whose forced unwind through that noexcept
// destructor aborts the whole process ("terminate called without an active
// exception"): a daemon thread inside conv3d at exit killed every program.
// GilRelease instead blocks such a thread until the process exits (as PyO3
// does). Two signals say "exiting": an atexit callback (it runs before
// finalization starts, while threads still take the GIL normally, so no
// thread can be caught between checking and re-taking) and the
// interpreter's own finalizing flag.
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

// Called from the module's atexit callback.
inline void note_interpreter_exiting() { interpreter_exiting().store(true, std::memory_order_release); }

class GilRelease {
 public:
  GilRelease() : state_(PyEval_SaveThread()) {}
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;
  ~GilRelease() {
    while (interpreter_exiting().load(std::memory_order_acquire) || finalizing())
      std::this_thread::sleep_for(std::chrono::hours(1));
    PyEval_RestoreThread(state_);
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
