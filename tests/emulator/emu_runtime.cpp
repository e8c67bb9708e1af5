// The emulator's GPU: a kernel registry filled by the instantiation macro,
// a dispatcher that runs every GPU thread of a threadgroup as an OS thread
// with real barriers, and the device-memory byte counters.
#include "emu_runtime.h"

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

thread_local ThreadContext* tls_context = nullptr;
std::atomic<int> lane_layout{0};

std::map<std::string, KernelEntry>& registry() {
  static std::map<std::string, KernelEntry> kernels;
  return kernels;
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

ThreadContext& context() { return *tls_context; }

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

void set_lane_layout(int layout) { lane_layout.store(layout); }

bool register_kernel(const char* name, KernelEntry entry) {
  return registry().emplace(name, entry).second;
}

std::vector<std::string> kernel_names() {
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

Counters dispatch(const std::string& name, const Launch& launch, const KernelArgs& args_in,
                  const BufferSizes& sizes) {
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
  Barrier tg_barrier{int(threads)};
  std::vector<std::unique_ptr<SimdGroup>> simdgroups;
  for (std::uint64_t s = 0; s < threads / kSimdWidth; ++s) simdgroups.emplace_back(new SimdGroup);

  // The same OS threads run the threadgroups one after another; the barrier
  // around each keeps threadgroup memory private to one threadgroup at a time.
  auto body = [&](unsigned tid) {
    ThreadContext ctx;
    ctx.lane = tid % kSimdWidth;
    ctx.simdgroup = simdgroups[tid / kSimdWidth].get();
    ctx.threadgroup_barrier = &tg_barrier;
    tls_context = &ctx;
    thread_read = thread_written = 0;
    std::uint64_t linear = 0;
    for (std::uint64_t z = 0; z < launch.grid[2]; ++z)
      for (std::uint64_t y = 0; y < launch.grid[1]; ++y)
        for (std::uint64_t x = 0; x < launch.grid[0]; ++x) {
          if (linear++ % launch.sample_stride != 0) continue;
          // Fresh threadgroup memory is garbage on a GPU: poison it with NaN
          // bytes so a read before a write shows up in the results.
          if (tid == 0 && smem) std::memset(smem.get(), 0xff, launch.threadgroup_memory);
          tg_barrier.arrive_and_wait();
          kernel(args, metal::uint3{unsigned(x), unsigned(y), unsigned(z)}, tid, tid / kSimdWidth,
                 tid % kSimdWidth);
          tg_barrier.arrive_and_wait();
        }
    total_read += thread_read;
    total_written += thread_written;
    tls_context = nullptr;
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& t : pool) t.join();
  for (auto& r : device_ranges) r = Range{};
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
