// A persistent pool of worker threads (no OpenMP: two OpenMP runtimes in one
// process are a known source of crashes, e.g. on macOS next to PyTorch).
#pragma once

#include <cstdint>
#include <functional>

namespace volconv::cpu {

// Splits [0, n) statically into at most get_num_threads() contiguous chunks,
// in order, and runs fn(begin, end) for each, one chunk per thread (the
// caller runs the first). Returns when all are done; rethrows the first
// exception. A nested or concurrent call runs its chunks on the caller.
void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

}  // namespace volconv::cpu
