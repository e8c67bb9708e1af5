// The OpenMP runtime another library already loaded into this process
// (PyTorch's libgomp, Intel's libiomp5, LLVM's libomp), found the way
// threadpoolctl finds it: by walking the loaded objects. Right after a torch
// op its workers are still spinning on every core; running our parallel
// regions on that same team takes the cores without a fight, and leaves the
// workers warm for torch's next op. volconv never loads a runtime itself.
#pragma once

#include <functional>
#include <string>

namespace volconv::cpu::openmp {

// The entry points every such runtime exports (the GNU ABI: libiomp5 and
// libomp carry it too).
struct Runtime {
  std::string path;
  void (*parallel)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);  // GOMP_parallel
  int (*thread_num)();
  int (*num_threads)();
  int (*in_parallel)();
  int (*max_threads)();  // the team size the calling thread's next region gets (torch's setting)
};

// The runtime parallel regions may run on now, or nullptr: none is loaded,
// the caller is already inside one of its parallel regions, or this process
// is a fork() child of the one that found it (an inherited libgomp team
// hangs the child's next region: GCC bug 60035; known only when this library
// was loaded before the fork). Cheap when nothing new was loaded since the
// last look.
const Runtime* usable_runtime();

// Runs body(i) for every i in [0, chunks) on a team (the caller is thread 0
// and runs chunk 0); thread t runs chunks t, t + team, ... body must not
// throw. Returns when all are done. The team is at least as large as the
// runtime's own regions (omp_get_max_threads): GNU libgomp ends the threads a
// smaller team leaves out, and the host's next op would start them again.
void run_chunks(const Runtime& rt, int chunks, const std::function<void(int)>& body);

namespace testing {
// false: parallel_for never uses an OpenMP runtime (to compare the routes).
void allow(bool allowed);
// Whether a loaded object's path names an OpenMP runtime.
bool is_runtime_path(const char* path);
}  // namespace testing

}  // namespace volconv::cpu::openmp
