// The subset of the Metal Shading Language the kernels in metal/ use (and
// the emulator's self-test kernels: simd_sum, simd_shuffle), modelled in C++
// so they run on a CPU (tests only, never shipped).
// The kernels compile as C++14 (MSL 3.1's base), so this header is C++14;
// barriers and the thread registry live in the C++20 runtime, behind the
// out-of-line functions declared in namespace emu.
// This header declares types and functions only; the address-space macros
// live in shim/metal_stdlib, which the .metal files include, so emulator
// runtime code can include this header and still use std::thread.
#pragma once

// Every std header first: `thread`, `device`, `constant` become macros later.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

// Apple's <metal_stdlib> declares the fixed-width integers at global scope.
using std::int16_t;
using std::int32_t;
using std::int64_t;
using std::int8_t;
using std::uint16_t;
using std::uint32_t;
using std::uint64_t;
using std::uint8_t;

namespace emu {

constexpr int kSimdWidth = 32;

// Which barrier a kernel waits at, and whether it orders memory: a barrier
// with mem_none only synchronises execution, so ThreadSanitizer sees no
// happens-before edge through it (as a GPU gives no memory ordering).
enum class BarrierScope { threadgroup, simdgroup };
void barrier_wait(BarrierScope scope, bool orders_memory);

// Cross-lane exchange for simd_shuffle / simd_sum / simdgroup_multiply:
// every lane publishes `bytes` at `value`, waits for the whole simdgroup, and
// gets the slot array of that exchange (kSimdWidth slots of 16 bytes).
const unsigned char* simd_exchange(const void* value, std::size_t bytes);
// The same for the three 8x8 operands of a multiply-accumulate: lane writes
// its elements into the returned [3][64] array, then calls simd_exchange_done.
float (*simd_matrices())[64];
void simd_exchange_done();

// The calling GPU thread's lane in its simdgroup.
unsigned lane();

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

#ifdef EMU_DISTINCT_ADDRESS_SPACES
// The address-space check (shim/metal_stdlib) puts bfloat values in device
// and threadgroup memory, where C++ cannot call a class's members; there it
// is the builtin, and the build that runs checks the bfloat rules below.
using bfloat = __bf16;
#else
// MSL 3.1's bfloat (spec 2.22): converts from float and half only
// explicitly, to float implicitly, and never meets half in one operator.
// A class, so each of those rules is a compile error here as on Apple;
// the value is clang's __bf16 (round to nearest even from float; the
// runtime supplies __truncsfbf2 from csrc/core/float_convert.h).
class bfloat {
 public:
  bfloat() = default;
  template <typename U, typename = typename std::enable_if<std::is_convertible<U, float>::value &&
                                                           !std::is_same<U, bfloat>::value>::type>
  explicit bfloat(U value) : value_(__bf16(float(value))) {}
  operator float() const { return float(value_); }

 private:
  __bf16 value_;
};
static_assert(sizeof(bfloat) == 2 && std::is_trivially_copyable<bfloat>::value, "bfloat is 2 plain bytes");

// bfloat and half never mix in one operator (MSL 3.1): without these, the
// implicit bfloat -> float conversion would let `b * h` compile as float.
template <typename A, typename B>
using emu_bfloat_half_pair =
    typename std::enable_if<(std::is_same<A, bfloat>::value && std::is_same<B, half>::value) ||
                            (std::is_same<A, half>::value && std::is_same<B, bfloat>::value)>::type;
#define EMU_NO_BFLOAT_HALF_MIX(op)                                         \
  template <typename A, typename B, typename = emu_bfloat_half_pair<A, B>> \
  float operator op(A, B) = delete;
EMU_NO_BFLOAT_HALF_MIX(+)
EMU_NO_BFLOAT_HALF_MIX(-)
EMU_NO_BFLOAT_HALF_MIX(*)
EMU_NO_BFLOAT_HALF_MIX(/)
EMU_NO_BFLOAT_HALF_MIX(<)
EMU_NO_BFLOAT_HALF_MIX(>)
EMU_NO_BFLOAT_HALF_MIX(<=)
EMU_NO_BFLOAT_HALF_MIX(>=)
EMU_NO_BFLOAT_HALF_MIX(==)
EMU_NO_BFLOAT_HALF_MIX(!=)
EMU_NO_BFLOAT_HALF_MIX(+=)
EMU_NO_BFLOAT_HALF_MIX(-=)
EMU_NO_BFLOAT_HALF_MIX(*=)
EMU_NO_BFLOAT_HALF_MIX(/=)
#undef EMU_NO_BFLOAT_HALF_MIX
#endif

// A bfloat vector: clang's vector extension takes builtin element types
// only. Metal's alignment: 2, 4 (3 like 4) elements of 2 bytes.
template <int N>
struct alignas(N == 3 ? 8 : 2 * N) bfloat_vec {
  bfloat v[N];
  bfloat& operator[](int i) { return v[i]; }
  const bfloat& operator[](int i) const { return v[i]; }
};

template <typename T, int N>
struct vec_type {
  using type = T __attribute__((ext_vector_type(N)));
};
#ifndef EMU_DISTINCT_ADDRESS_SPACES
template <int N>
struct vec_type<bfloat, N> {
  using type = bfloat_vec<N>;
};
#endif
template <typename T, int N>
using vec = typename vec_type<T, N>::type;

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

inline void threadgroup_barrier(mem_flags flags) {
  emu::barrier_wait(emu::BarrierScope::threadgroup, flags != mem_flags::mem_none);
}
inline void simdgroup_barrier(mem_flags flags) {
  emu::barrier_wait(emu::BarrierScope::simdgroup, flags != mem_flags::mem_none);
}

using std::abs;
using std::exp;
using std::fma;
using std::isfinite;
using std::max;
using std::min;

template <typename T>
T simd_shuffle(T value, ushort source_lane) {
  static_assert(sizeof(T) <= 16, "simd_shuffle: value too large for the scratch slot");
  const unsigned char* slots = emu::simd_exchange(&value, sizeof(T));
  T result;
  std::memcpy(&result, slots + 16 * (source_lane % emu::kSimdWidth), sizeof(T));
  return result;
}

template <typename T>
T simd_sum(T value) {
  static_assert(sizeof(T) <= 16, "simd_sum: value too large for the scratch slot");
  const unsigned char* slots = emu::simd_exchange(&value, sizeof(T));
  T total = T(0);
  for (int lane = 0; lane < emu::kSimdWidth; ++lane) {
    T v;
    std::memcpy(&v, slots + 16 * lane, sizeof(T));
    total += v;
  }
  return total;
}

// An 8x8 matrix distributed over a simdgroup: each lane holds exactly the two
// elements Apple's hardware gives it, nothing more. A default-constructed
// one holds garbage on a GPU: here NaN, so a kernel that accumulates into
// one it never filled produces NaN rather than a lucky zero.
template <typename T, int Cols, int Rows>
class simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the emulator models 8x8 simdgroup matrices only");

 public:
  simdgroup_matrix() : elements_{T(__builtin_nanf("")), T(__builtin_nanf(""))} {}
  vec<T, 2>& thread_elements() { return elements_; }
  const vec<T, 2>& thread_elements() const { return elements_; }

 private:
  vec<T, 2> elements_;
};

template <typename T, int Cols, int Rows>
simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.thread_elements()[0] = value;
  m.thread_elements()[1] = value;
  return m;
}

// Element (row, col) of the matrix at `origin` (x = column, y = row) in a
// row-major array with `elements_per_row`; `transpose` reads (col, row).
// Src/Dst: a device or threadgroup pointer (any address space here).
template <typename T, int Cols, int Rows, typename Src>
void simdgroup_load(simdgroup_matrix<T, Cols, Rows>& d, Src src, ulong elements_per_row = Cols,
                    ulong2 origin = ulong2{0, 0}, bool transpose = false) {
  int row, col;
  emu::lane_coord(emu::lane(), row, col);
  for (int e = 0; e < 2; ++e) {
    const ulong r = origin.y + row, c = origin.x + col + e;
    d.thread_elements()[e] = T(transpose ? src[c * elements_per_row + r] : src[r * elements_per_row + c]);
  }
}

template <typename T, int Cols, int Rows, typename Dst>
void simdgroup_store(const simdgroup_matrix<T, Cols, Rows>& m, Dst dst, ulong elements_per_row = Cols,
                     ulong2 origin = ulong2{0, 0}, bool transpose = false) {
  using U = typename std::remove_reference<decltype(dst[0])>::type;
  int row, col;
  emu::lane_coord(emu::lane(), row, col);
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
  float(*m)[64] = emu::simd_matrices();
  int row, col;
  emu::lane_coord(emu::lane(), row, col);
  for (int e = 0; e < 2; ++e) {
    m[0][row * 8 + col + e] = float(a.thread_elements()[e]);
    m[1][row * 8 + col + e] = float(b.thread_elements()[e]);
    m[2][row * 8 + col + e] = float(c.thread_elements()[e]);
  }
  emu::simd_exchange_done();
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
  // The forward kernels' epilogue operands, buffers 4 and 5 (null when absent).
  const void* bias = nullptr;
  const void* residual = nullptr;
};
using KernelEntry = void (*)(const KernelArgs&, metal::uint3 tgid, metal::uint tid, metal::uint simd_gid,
                             metal::uint lane);

// Records `name`; a second kernel under the same name is an error that the
// library reports when loaded (emu_registry_error), as Apple's would.
bool register_kernel(const char* name, KernelEntry entry);

// Deduces the element and params types from the kernel's signature (C++14:
// the kernel's address is a template argument of the call function).
template <typename F>
struct KernelSignature;
template <typename I, typename W, typename O, typename P, typename S>
struct KernelSignature<void (*)(I*, W*, O*, P&, S*, metal::uint3, metal::uint, metal::uint, metal::uint)> {
  // C-style casts: the buffers arrive as plain pointers and enter the
  // kernel's address spaces here (a no-op where they are erased).
  template <void (*Kernel)(I*, W*, O*, P&, S*, metal::uint3, metal::uint, metal::uint, metal::uint)>
  static void call(const KernelArgs& a, metal::uint3 tgid, metal::uint tid, metal::uint sgid, metal::uint lane) {
    Kernel((I*)a.input, (W*)a.weight, (O*)a.output, *(P*)a.params, (S*)a.threadgroup_memory, tgid, tid, sgid,
           lane);
  }
};
// The forward conv3d kernels: also a bias (buffer 4) and a residual (buffer 5).
template <typename I, typename W, typename O, typename P, typename B, typename R, typename S>
struct KernelSignature<void (*)(I*, W*, O*, P&, B*, R*, S*, metal::uint3, metal::uint, metal::uint, metal::uint)> {
  template <void (*Kernel)(I*, W*, O*, P&, B*, R*, S*, metal::uint3, metal::uint, metal::uint, metal::uint)>
  static void call(const KernelArgs& a, metal::uint3 tgid, metal::uint tid, metal::uint sgid, metal::uint lane) {
    Kernel((I*)a.input, (W*)a.weight, (O*)a.output, *(P*)a.params, (B*)a.bias, (R*)a.residual,
           (S*)a.threadgroup_memory, tgid, tid, sgid, lane);
  }
};

}  // namespace emu
