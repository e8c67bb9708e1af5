// parallel_for: the CPU backend's one way to run work on several threads.
// It runs through the caller's executor when one is set
// (set_parallel_executor), else on the OpenMP team of a runtime another
// library already loaded (PyTorch's) when there is one, else on a persistent
// pool of our own; it
// never loads an OpenMP runtime (two in one process are a known source of
// crashes, e.g. on macOS next to PyTorch).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace volconv::cpu {

// Splits [0, n) statically into at most get_num_threads() contiguous chunks,
// in order, and runs fn(begin, end) for each, one chunk per thread (the
// caller runs the first). Returns when all are done; rethrows the first
// exception. A nested or concurrent call runs its chunks on the caller.
void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

namespace testing {
// Where the last parallel_for with n > 0 ran: "executor", "openmp", "pool" or "caller".
std::string last_parallel_route();
}  // namespace testing

}  // namespace volconv::cpu
