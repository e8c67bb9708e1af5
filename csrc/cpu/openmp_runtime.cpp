// Finding and using an OpenMP runtime that is already loaded. ELF systems
// (Linux) only: elsewhere nothing is found and parallel_for keeps its pool.
#include "openmp_runtime.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <unistd.h>
#endif

#include "../core/fork_safe_mutex.h"

namespace volconv::cpu::openmp {
namespace {

// GNU (also as auditwheel renames it: libgomp-a34b3233.so.1), Intel and LLVM.
bool is_openmp_runtime(const char* path) {
  const char* slash = std::strrchr(path, '/');
  const char* base = slash != nullptr ? slash + 1 : path;
  for (const char* prefix : {"libgomp.", "libgomp-", "libiomp", "libomp."})
    if (std::strncmp(base, prefix, std::strlen(prefix)) == 0) return true;
  return false;
}

std::atomic<bool> g_allowed{true};

#if defined(__linux__)

std::atomic<const Runtime*> g_found{nullptr};
std::atomic<pid_t> g_found_pid{0};
// Once this process forks, the child (and its children) never use the
// runtime: the parent's team may be recorded in the child's libgomp.
std::atomic<bool> g_forked{false};
[[maybe_unused]] const bool g_fork_registered =
    pthread_atfork(nullptr, nullptr, [] { g_forked.store(true); }) == 0;

// Objects loaded so far (glibc's counter): a new scan only when it moved.
std::atomic<unsigned long long> g_scanned_adds{~0ull};
detail::ForkSafeMutex g_mutex;

unsigned long long loaded_objects() {
  unsigned long long adds = 0;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        *static_cast<unsigned long long*>(out) = info->dlpi_adds;
        return 1;  // the counter is the same for every object: stop at the first
      },
      &adds);
  return adds;
}

std::string find_loaded_runtime() {
  std::string path;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        if (info->dlpi_name == nullptr || !is_openmp_runtime(info->dlpi_name)) return 0;
        *static_cast<std::string*>(out) = info->dlpi_name;
        return 1;
      },
      &path);
  return path;
}

// RTLD_NOLOAD: a handle to the loaded copy, never a second runtime. The
// handle is kept, so the runtime stays loaded while we may call it.
const Runtime* resolve(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return nullptr;
  auto* rt = new Runtime{path, nullptr, nullptr, nullptr, nullptr, nullptr};
  rt->parallel = reinterpret_cast<decltype(rt->parallel)>(dlsym(handle, "GOMP_parallel"));
  rt->thread_num = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_thread_num"));
  rt->num_threads = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_num_threads"));
  rt->in_parallel = reinterpret_cast<int (*)()>(dlsym(handle, "omp_in_parallel"));
  rt->max_threads = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_max_threads"));
  if (rt->parallel && rt->thread_num && rt->num_threads && rt->in_parallel && rt->max_threads) return rt;
  delete rt;
  dlclose(handle);
  return nullptr;
}

const Runtime* loaded_runtime() {
  const Runtime* rt = g_found.load(std::memory_order_acquire);
  if (rt != nullptr) return rt;
  const unsigned long long adds = loaded_objects();
  if (adds == g_scanned_adds.load(std::memory_order_relaxed)) return nullptr;
  std::lock_guard<detail::ForkSafeMutex> lock(g_mutex);
  rt = g_found.load();
  if (rt == nullptr) {
    const std::string path = find_loaded_runtime();
    if (!path.empty()) rt = resolve(path);
    if (rt != nullptr) {
      g_found_pid.store(getpid());
      g_found.store(rt, std::memory_order_release);
    }
    g_scanned_adds.store(adds, std::memory_order_relaxed);
  }
  return rt;
}

#endif

struct Job {
  const Runtime* rt;
  int chunks;
  const std::function<void(int)>* body;
};

void team_member(void* data) {
  const Job& job = *static_cast<const Job*>(data);
  const int team = job.rt->num_threads();
  for (int i = job.rt->thread_num(); i < job.chunks; i += team) (*job.body)(i);
}

}  // namespace

const Runtime* usable_runtime() {
#if defined(__linux__)
  if (!g_allowed.load(std::memory_order_relaxed) || g_forked.load(std::memory_order_relaxed)) return nullptr;
  const Runtime* rt = loaded_runtime();
  // The pid check also covers a child of a raw clone() that ran no atfork handler.
  if (rt == nullptr || g_found_pid.load(std::memory_order_relaxed) != getpid() || rt->in_parallel()) return nullptr;
  return rt;
#else
  return nullptr;
#endif
}

void run_chunks(const Runtime& rt, int chunks, const std::function<void(int)>& body) {
  Job job{&rt, chunks, &body};
  rt.parallel(team_member, &job, unsigned(std::max(chunks, rt.max_threads())), 0);
}

namespace testing {
void allow(bool allowed) { g_allowed.store(allowed); }
bool is_runtime_path(const char* path) { return is_openmp_runtime(path); }
}  // namespace testing

}  // namespace volconv::cpu::openmp
