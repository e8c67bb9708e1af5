// The emulator's GPU: a kernel registry filled by the instantiation macro,
// a dispatcher that runs every GPU thread of a threadgroup as an OS thread
// with real barriers, and the device-memory byte counters.
#include "emu_runtime.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "emu_barrier.h"
#include "float_convert.h"  // csrc/core

// clang lowers float -> __bf16 to this libcall (libgcc 12 lacks it); the
// core's bit-exact round-to-nearest-even conversion provides it.
extern "C" __bf16 __truncsfbf2(float f) {
  const std::uint16_t bits = volconv::detail::float_to_bf16(f);
  __bf16 b;
  std::memcpy(&b, &bits, 2);
  return b;
}

namespace emu {
namespace {

// What the 32 lanes of one simdgroup share: a barrier and two scratch slots
// for cross-lane exchange. Lanes alternate slots, so each exchange needs one
// barrier: a lane can only overwrite a slot after every lane has passed the
// barrier of the exchange in between, i.e. finished reading it.
struct SimdGroup {
  Barrier barrier{kSimdWidth};
  float matrices[2][3][64];                             // A, B, C of a multiply-accumulate
  alignas(16) unsigned char values[2][kSimdWidth][16];  // simd_shuffle / simd_sum
};

// A kernel thread's failure (a barrier some thread cannot reach): unwinds
// the kernel back to the dispatcher, which reports the first one.
struct KernelFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One dispatch's shared state: the first failure, and the barriers to abort
// on it so that no thread is left waiting.
struct DispatchState {
  std::string kernel;
  std::vector<Barrier*> kernel_barriers;
  std::mutex mutex;
  std::string error;
  std::atomic<bool> failed{false};

  void fail(const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (error.empty()) error = message;
    }
    failed.store(true, std::memory_order_relaxed);
    for (Barrier* b : kernel_barriers) b->abort();
  }
};

struct ThreadContext {
  unsigned tid = 0, lane = 0;
  metal::uint3 tgid{0, 0, 0};
  SimdGroup* simdgroup = nullptr;
  Barrier* threadgroup_barrier = nullptr;
  DispatchState* dispatch = nullptr;
  int slot = 0;
};

thread_local ThreadContext* tls_context = nullptr;
std::atomic<int> lane_layout{0};

std::int64_t default_timeout_ms() {
  const char* env = std::getenv("VOLCONV_EMU_BARRIER_TIMEOUT_MS");
  return env ? std::atoll(env) : 120000;
}
std::atomic<std::int64_t> barrier_timeout_ms{default_timeout_ms()};

std::map<std::string, KernelEntry>& registry() {
  static std::map<std::string, KernelEntry> kernels;
  return kernels;
}
std::string& registry_errors() {
  static std::string errors;
  return errors;
}

ThreadContext& context() { return *tls_context; }

std::string where(const ThreadContext& t) {
  return "[emulator] kernel \"" + t.dispatch->kernel + "\", threadgroup (" + std::to_string(t.tgid.x) + ", " +
         std::to_string(t.tgid.y) + ", " + std::to_string(t.tgid.z) + "): ";
}

// Waits at `b` and turns anything but a pass into a KernelFault.
void wait_at(Barrier& b, bool orders_memory, const char* what) {
  const ThreadContext& t = context();
  const auto timeout = std::chrono::milliseconds(barrier_timeout_ms.load(std::memory_order_relaxed));
  switch (b.wait(orders_memory, timeout)) {
    case Barrier::Outcome::passed:
      return;
    case Barrier::Outcome::thread_left:
      throw KernelFault(where(t) + "thread " + std::to_string(b.left_tid()) +
                        " returned from the kernel while thread " + std::to_string(t.tid) + " waits at a " +
                        what + "; every thread must reach each barrier");
    case Barrier::Outcome::aborted:
      throw KernelFault(where(t) + "aborted after another thread failed");
    case Barrier::Outcome::timed_out:
      throw KernelFault(where(t) + "thread " + std::to_string(t.tid) + " waited " +
                        std::to_string(timeout.count()) + " ms at a " + what + " that only " +
                        std::to_string(b.waiting()) + " of " + std::to_string(b.count()) +
                        " threads reached; every thread must reach the same barriers in the same order");
  }
}

// Device buffers of the running dispatch and what the kernels moved.
struct Range {
  std::uintptr_t lo = 0, hi = 0;
  bool contains(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    return a >= lo && a < hi;
  }
};
Range device_ranges[3];
std::atomic<std::uint64_t> total_read{0}, total_written{0};
thread_local std::uint64_t thread_read = 0, thread_written = 0;

}  // namespace

// ---------------------------------------------------------------- called by the shim

void barrier_wait(BarrierScope scope, bool orders_memory) {
  ThreadContext& t = context();
  if (scope == BarrierScope::threadgroup)
    wait_at(*t.threadgroup_barrier, orders_memory, "threadgroup_barrier");
  else
    wait_at(t.simdgroup->barrier, orders_memory, "simdgroup_barrier");
}

const unsigned char* simd_exchange(const void* value, std::size_t bytes) {
  ThreadContext& t = context();
  const int slot = t.slot;
  t.slot ^= 1;
  std::memcpy(t.simdgroup->values[slot][t.lane], value, bytes);
  wait_at(t.simdgroup->barrier, true, "simdgroup operation (simd_sum, simd_shuffle)");
  return &t.simdgroup->values[slot][0][0];
}

float (*simd_matrices())[64] { return context().simdgroup->matrices[context().slot]; }

void simd_exchange_done() {
  ThreadContext& t = context();
  t.slot ^= 1;
  wait_at(t.simdgroup->barrier, true, "simdgroup_multiply_accumulate");
}

unsigned lane() { return context().lane; }

void lane_coord(unsigned lane, int& row, int& col) {
  if (lane_layout.load(std::memory_order_relaxed) == 0) {
    const int qid = int(lane / 4);
    row = (qid & 4) + int((lane / 2) % 4);
    col = (qid & 2) * 2 + int(lane % 2) * 2;
  } else {  // a plausible but wrong guess: row-major, 4 lanes per row
    row = int(lane / 4);
    col = int(lane % 4) * 2;
  }
}

// ---------------------------------------------------------------- registry

bool register_kernel(const char* name, KernelEntry entry) {
  if (registry().emplace(name, entry).second) return true;
  registry_errors() += std::string(registry_errors().empty() ? "" : "\n") +
                       "[emulator] duplicate host_name \"" + name +
                       "\": two kernel instantiations share one name (Apple's compiler rejects the library)";
  return false;
}

std::string registry_error() { return registry_errors(); }

std::vector<std::string> kernel_names() {
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

void set_lane_layout(int layout) { lane_layout.store(layout); }

void set_barrier_timeout_ms(std::int64_t milliseconds) { barrier_timeout_ms.store(milliseconds); }

// ---------------------------------------------------------------- dispatch

Counters dispatch(const std::string& name, const Launch& launch, const KernelArgs& args_in,
                  const BufferSizes& sizes) {
  if (!registry_errors().empty()) throw std::runtime_error(registry_errors());
  const auto it = registry().find(name);
  if (it == registry().end()) throw std::runtime_error("emulator: no kernel named " + name);
  const KernelEntry kernel = it->second;
  const std::uint64_t threads = launch.threadgroup[0] * launch.threadgroup[1] * launch.threadgroup[2];
  if (launch.sample_stride == 0) throw std::runtime_error("emulator: sample_stride must be positive");
  if (threads == 0 || threads % kSimdWidth != 0 || threads > 1024)
    throw std::runtime_error("emulator: threadgroup size must be a positive multiple of 32, at most 1024");

  device_ranges[0] = {reinterpret_cast<std::uintptr_t>(args_in.input),
                      reinterpret_cast<std::uintptr_t>(args_in.input) + sizes.input};
  device_ranges[1] = {reinterpret_cast<std::uintptr_t>(args_in.weight),
                      reinterpret_cast<std::uintptr_t>(args_in.weight) + sizes.weight};
  device_ranges[2] = {reinterpret_cast<std::uintptr_t>(args_in.output),
                      reinterpret_cast<std::uintptr_t>(args_in.output) + sizes.output};
  total_read = 0;
  total_written = 0;

  // Exactly the planned bytes, so AddressSanitizer flags any access past them.
  std::unique_ptr<unsigned char[]> smem(launch.threadgroup_memory ? new unsigned char[launch.threadgroup_memory]
                                                                  : nullptr);
  KernelArgs args = args_in;
  args.threadgroup_memory = smem.get();
  DispatchState state;
  state.kernel = name;
  Barrier tg_barrier{unsigned(threads)};
  // The dispatcher's own rendezvous between threadgroups: never aborted.
  Barrier between{unsigned(threads)};
  std::vector<std::unique_ptr<SimdGroup>> simdgroups;
  for (std::uint64_t s = 0; s < threads / kSimdWidth; ++s) simdgroups.emplace_back(new SimdGroup);
  state.kernel_barriers.push_back(&tg_barrier);
  for (auto& s : simdgroups) state.kernel_barriers.push_back(&s->barrier);
  const auto forever = std::chrono::hours(24 * 365);

  // The same OS threads run the threadgroups one after another; the
  // rendezvous around each keeps threadgroup memory private to one
  // threadgroup at a time and lets a failure stop every thread at once.
  auto body = [&](unsigned tid) {
    ThreadContext ctx;
    ctx.tid = tid;
    ctx.lane = tid % kSimdWidth;
    ctx.simdgroup = simdgroups[tid / kSimdWidth].get();
    ctx.threadgroup_barrier = &tg_barrier;
    ctx.dispatch = &state;
    tls_context = &ctx;
    thread_read = thread_written = 0;
    std::uint64_t linear = 0;
    for (std::uint64_t z = 0; z < launch.grid[2]; ++z)
      for (std::uint64_t y = 0; y < launch.grid[1]; ++y)
        for (std::uint64_t x = 0; x < launch.grid[0]; ++x) {
          if (linear++ % launch.sample_stride != 0) continue;
          between.wait(true, forever);
          if (state.failed.load(std::memory_order_relaxed)) return;
          if (tid == 0) {
            for (Barrier* b : state.kernel_barriers) b->reset();
            // Fresh threadgroup memory is garbage on a GPU: poison it with NaN
            // bytes so a read before a write shows up in the results.
            if (smem) std::memset(smem.get(), 0xff, launch.threadgroup_memory);
          }
          between.wait(true, forever);
          ctx.tgid = metal::uint3{unsigned(x), unsigned(y), unsigned(z)};
          ctx.slot = 0;
          try {
            kernel(args, ctx.tgid, tid, tid / kSimdWidth, tid % kSimdWidth);
          } catch (const std::exception& e) {
            state.fail(e.what());
          }
          ctx.simdgroup->barrier.leave(tid);
          tg_barrier.leave(tid);
        }
    total_read += thread_read;
    total_written += thread_written;
    tls_context = nullptr;
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& t : pool) t.join();
  for (auto& r : device_ranges) r = Range{};
  if (state.failed) throw std::runtime_error(state.error);
  const std::uint64_t total = launch.grid[0] * launch.grid[1] * launch.grid[2];
  const std::uint64_t run = total == 0 ? 0 : (total - 1) / launch.sample_stride + 1;
  return Counters{total_read.load(), total_written.load(), run};
}

}  // namespace emu

// Device-memory counters: the kernel sources are compiled with
// -fsanitize-coverage=trace-loads,trace-stores, so every load and store they
// make calls one of these with its address; those inside the dispatch's
// device buffers are counted (threadgroup memory, registers and the stack
// are not device memory).
#ifdef EMU_COUNT_DEVICE_BYTES
namespace {
inline void count(const void* p, std::uint64_t bytes, bool store) {
  using emu::device_ranges;
  if (device_ranges[0].contains(p) || device_ranges[1].contains(p) || device_ranges[2].contains(p))
    (store ? emu::thread_written : emu::thread_read) += bytes;
}
}  // namespace
extern "C" {
void __sanitizer_cov_load1(std::uint8_t* p) { count(p, 1, false); }
void __sanitizer_cov_load2(std::uint16_t* p) { count(p, 2, false); }
void __sanitizer_cov_load4(std::uint32_t* p) { count(p, 4, false); }
void __sanitizer_cov_load8(std::uint64_t* p) { count(p, 8, false); }
void __sanitizer_cov_load16(__int128* p) { count(p, 16, false); }
void __sanitizer_cov_store1(std::uint8_t* p) { count(p, 1, true); }
void __sanitizer_cov_store2(std::uint16_t* p) { count(p, 2, true); }
void __sanitizer_cov_store4(std::uint32_t* p) { count(p, 4, true); }
void __sanitizer_cov_store8(std::uint64_t* p) { count(p, 8, true); }
void __sanitizer_cov_store16(__int128* p) { count(p, 16, true); }
}
#endif
