// The subset of the Metal Shading Language the kernels in metal/ use (and
// the emulator's self-test kernels: simd_sum, simd_shuffle), modelled in C++
// so they run on a CPU (tests only, never shipped).
// This header declares types and functions only; the address-space macros
// live in shim/metal_stdlib, which the .metal files include, so emulator
// runtime code can include this header and still use std::thread.
#pragma once

// Every std header first: `thread`, `device`, `constant` become macros later.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace emu {

// A reusable barrier for a fixed number of OS threads. Waiters sleep on the
// generation counter (a futex): dozens of threads share two cores, so
// spinning would starve the threads still on their way. Acquire/release on
// the counters is what orders memory across the barrier, and ThreadSanitizer
// sees exactly that.
class Barrier {
 public:
  explicit Barrier(int count) : count_(count) {}
  void arrive_and_wait() {
    const std::uint32_t generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      generation_.notify_all();
      return;
    }
    while (generation_.load(std::memory_order_acquire) == generation)
      generation_.wait(generation, std::memory_order_acquire);
  }

 private:
  const int count_;
  std::atomic<int> arrived_{0};
  std::atomic<std::uint32_t> generation_{0};
};

constexpr int kSimdWidth = 32;

// What the 32 lanes of one simdgroup share: a barrier and two scratch slots
// for cross-lane exchange. Lanes alternate slots, so each exchange needs one
// barrier: a lane can only overwrite a slot after every lane has passed the
// barrier of the exchange in between, i.e. finished reading it.
struct SimdGroup {
  Barrier barrier{kSimdWidth};
  float matrices[2][3][64];                    // A, B, C of a multiply-accumulate
  alignas(16) unsigned char values[2][kSimdWidth][16];  // simd_shuffle / simd_sum
};

struct ThreadContext {
  unsigned lane = 0;
  SimdGroup* simdgroup = nullptr;
  Barrier* threadgroup_barrier = nullptr;
  int slot = 0;
};

// The calling GPU thread's identity; set by the dispatcher for each OS thread.
ThreadContext& context();

// Where lane `lane` keeps elements 0 and 1 of an 8x8 simdgroup_matrix:
// (row, col) and (row, col + 1). Apple's layout unless a test selected a
// deliberately wrong one (emu_set_lane_layout) to prove the tests notice.
void lane_coord(unsigned lane, int& row, int& col);

}  // namespace emu

namespace metal {

using uint = unsigned int;
using ushort = unsigned short;
using uchar = unsigned char;
using ulong = unsigned long;
using half = _Float16;
// clang's __bf16 converts from float with round-to-nearest-even (the
// emulator supplies __truncsfbf2 from csrc/core/float_convert.h).
using bfloat = __bf16;

template <typename T, int N>
using vec = T __attribute__((ext_vector_type(N)));

#define EMU_VECTOR_TYPES(T) \
  using T##2 = vec<T, 2>;   \
  using T##3 = vec<T, 3>;   \
  using T##4 = vec<T, 4>;
EMU_VECTOR_TYPES(float)
EMU_VECTOR_TYPES(half)
EMU_VECTOR_TYPES(bfloat)
EMU_VECTOR_TYPES(int)
EMU_VECTOR_TYPES(uint)
EMU_VECTOR_TYPES(short)
EMU_VECTOR_TYPES(ushort)
EMU_VECTOR_TYPES(long)
EMU_VECTOR_TYPES(ulong)
#undef EMU_VECTOR_TYPES

enum class mem_flags : unsigned { mem_none = 0, mem_device = 1, mem_threadgroup = 2, mem_texture = 4 };
inline mem_flags operator|(mem_flags a, mem_flags b) { return mem_flags(unsigned(a) | unsigned(b)); }

inline void threadgroup_barrier(mem_flags) { emu::context().threadgroup_barrier->arrive_and_wait(); }
inline void simdgroup_barrier(mem_flags) { emu::context().simdgroup->barrier.arrive_and_wait(); }

using std::abs;
using std::fma;
using std::max;
using std::min;

template <typename T>
T simd_shuffle(T value, ushort source_lane) {
  static_assert(sizeof(T) <= 16, "simd_shuffle: value too large for the scratch slot");
  emu::ThreadContext& t = emu::context();
  const int slot = t.slot;
  t.slot ^= 1;
  std::memcpy(t.simdgroup->values[slot][t.lane], &value, sizeof(T));
  t.simdgroup->barrier.arrive_and_wait();
  T result;
  std::memcpy(&result, t.simdgroup->values[slot][source_lane % emu::kSimdWidth], sizeof(T));
  return result;
}

template <typename T>
T simd_sum(T value) {
  emu::ThreadContext& t = emu::context();
  const int slot = t.slot;
  t.slot ^= 1;
  std::memcpy(t.simdgroup->values[slot][t.lane], &value, sizeof(T));
  t.simdgroup->barrier.arrive_and_wait();
  T total = T(0);
  for (int lane = 0; lane < emu::kSimdWidth; ++lane) {
    T v;
    std::memcpy(&v, t.simdgroup->values[slot][lane], sizeof(T));
    total += v;
  }
  return total;
}

// An 8x8 matrix distributed over a simdgroup: each lane holds exactly the two
// elements Apple's hardware gives it, nothing more.
template <typename T, int Cols, int Rows>
class simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the emulator models 8x8 simdgroup matrices only");

 public:
  simdgroup_matrix() : elements_{T(0), T(0)} {}
  vec<T, 2>& thread_elements() { return elements_; }
  const vec<T, 2>& thread_elements() const { return elements_; }

 private:
  vec<T, 2> elements_;
};

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.thread_elements() = vec<T, 2>{value, value};
  return m;
}

// Element (row, col) of the matrix at `origin` (x = column, y = row) in a
// row-major array with `elements_per_row`; `transpose` reads (col, row).
template <typename T, typename U, int Cols, int Rows>
void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, const U* src, ulong elements_per_row = Cols,
                    ulong2 origin = ulong2{0, 0}, bool transpose = false) {
  int row, col;
  emu::lane_coord(emu::context().lane, row, col);
  for (int e = 0; e < 2; ++e) {
    const ulong r = origin.y + row, c = origin.x + col + e;
    d.thread_elements()[e] = T(transpose ? src[c * elements_per_row + r] : src[r * elements_per_row + c]);
  }
}

template <typename T, typename U, int Cols, int Rows>
void simdgroup_store(const simdgroup_matrix<T, Cols, Rows>& m, U* dst, ulong elements_per_row = Cols,
                     ulong2 origin = ulong2{0, 0}, bool transpose = false) {
  int row, col;
  emu::lane_coord(emu::context().lane, row, col);
  for (int e = 0; e < 2; ++e) {
    const ulong r = origin.y + row, c = origin.x + col + e;
    (transpose ? dst[c * elements_per_row + r] : dst[r * elements_per_row + c]) = U(m.thread_elements()[e]);
  }
}

// d = a * b + c. Every lane publishes its elements of a, b and c, then
// computes its own two elements of d from the full matrices: the result
// depends on where each lane's elements sit, as it does on the GPU.
template <typename T>
void simdgroup_multiply_accumulate(simdgroup_matrix<T, 8, 8>& d, const simdgroup_matrix<T, 8, 8>& a,
                                   const simdgroup_matrix<T, 8, 8>& b, const simdgroup_matrix<T, 8, 8>& c) {
  emu::ThreadContext& t = emu::context();
  const int slot = t.slot;
  t.slot ^= 1;
  float(&m)[3][64] = t.simdgroup->matrices[slot];
  int row, col;
  emu::lane_coord(t.lane, row, col);
  for (int e = 0; e < 2; ++e) {
    m[0][row * 8 + col + e] = float(a.thread_elements()[e]);
    m[1][row * 8 + col + e] = float(b.thread_elements()[e]);
    m[2][row * 8 + col + e] = float(c.thread_elements()[e]);
  }
  t.simdgroup->barrier.arrive_and_wait();
  for (int e = 0; e < 2; ++e) {
    float acc = m[2][row * 8 + col + e];
    for (int k = 0; k < 8; ++k) acc = std::fma(m[0][row * 8 + k], m[1][k * 8 + col + e], acc);
    d.thread_elements()[e] = T(acc);
  }
}

template <typename T>
void simdgroup_multiply(simdgroup_matrix<T, 8, 8>& d, const simdgroup_matrix<T, 8, 8>& a,
                        const simdgroup_matrix<T, 8, 8>& b) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<T, 8, 8>(T(0)));
}

}  // namespace metal

namespace emu {

// The one signature every conv kernel has (the host binds the same buffers
// and threadgroup memory for all of them).
struct KernelArgs {
  const void* input;
  const void* weight;
  void* output;
  const void* params;
  void* threadgroup_memory;
};
using KernelEntry = void (*)(const KernelArgs&, metal::uint3 tgid, metal::uint tid, metal::uint simd_gid,
                             metal::uint lane);

bool register_kernel(const char* name, KernelEntry entry);

template <auto Kernel, typename T, typename P>
void call_kernel(const KernelArgs& a, metal::uint3 tgid, metal::uint tid, metal::uint sgid, metal::uint lane) {
  Kernel(static_cast<const T*>(a.input), static_cast<const T*>(a.weight), static_cast<T*>(a.output),
         *static_cast<const P*>(a.params), static_cast<T*>(a.threadgroup_memory), tgid, tid, sgid, lane);
}

// Deduces the element type and params type from the kernel's signature, so
// the instantiation macro needs only the name and the template arguments.
template <auto Kernel, typename T, typename P>
bool register_typed(const char* name,
                    void (*)(const T*, const T*, T*, const P&, T*, metal::uint3, metal::uint, metal::uint,
                             metal::uint)) {
  return register_kernel(name, &call_kernel<Kernel, T, P>);
}

}  // namespace emu
