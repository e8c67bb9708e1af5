// Portable vector traits: 4 floats through the GCC/Clang vector extension,
// which any target lowers to its own SIMD (or to scalar code). The fallback
// for CPUs without a dedicated kernel set; no 16-bit conversions here (the
// drivers convert in scalar code when a table reports none).
#pragma once

#include <cstdint>
#include <cstring>

namespace {

struct VecGeneric {
  static constexpr int L = 4;
  static constexpr int kRegs = 16;  // vector registers
  typedef float V __attribute__((vector_size(16)));
  static V zero() { return V{0.0f, 0.0f, 0.0f, 0.0f}; }
  // Loads and stores copy bytes through untyped pointers: p may be unaligned.
  static V load(const float* p) {
    const void* bytes = p;
    V v;
    std::memcpy(&v, bytes, sizeof v);
    return v;
  }
  static V load_partial(const float* p, int n) {
    const void* bytes = p;
    V v = zero();
    std::memcpy(&v, bytes, std::size_t(n) * 4);
    return v;
  }
  static V broadcast(const float* p) {
    const void* bytes = p;
    float v;
    std::memcpy(&v, bytes, 4);
    return V{v, v, v, v};
  }
  // See VecAvx512f::keep; the portable build leaves registers to the compiler.
  static void keep(V&) {}
  static V fma(V a, V b, V c) { return a * b + c; }
  // out[i] = the sum of v[i]'s lanes, i < 4.
  static void sum_lanes4(const V* v, float* out) {
    for (int i = 0; i < 4; ++i) out[i] = (v[i][0] + v[i][1]) + (v[i][2] + v[i][3]);
  }
  static void store(float* p, V v) {
    void* bytes = p;
    std::memcpy(bytes, &v, sizeof v);
  }
  static constexpr bool kHasStream = false;  // plain stores only
  static void stream(float* p, V v) { store(p, v); }
  static void store_partial(float* p, V v, int n) {
    void* bytes = p;
    std::memcpy(bytes, &v, std::size_t(n) * 4);
  }

  static constexpr bool kHasF16 = false;
  static V load_f16(const std::uint16_t*) { return zero(); }
  static V load_f16_partial(const std::uint16_t*, int) { return zero(); }
  static void store_f16(std::uint16_t*, V) {}
  static void store_f16_partial(std::uint16_t*, V, int) {}
  static constexpr bool kHasBF16Store = false;  // the scalar float_to_bf16 (store_tile declines)
  static void store_bf16(std::uint16_t*, V) {}
  static void store_bf16_partial(std::uint16_t*, V, int) {}
  static constexpr bool kHasBF16Load = false;
  static V load_bf16(const std::uint16_t*) { return zero(); }
  static V load_bf16_partial(const std::uint16_t*, int) { return zero(); }
};

}  // namespace
