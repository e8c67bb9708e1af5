// Vector traits for AVX2 + FMA + F16C (8 floats). Include only from a
// translation unit compiled with -mavx2 -mfma -mf16c.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace {

struct VecAvx2 {
  static constexpr int L = 8;
  static constexpr int kRegs = 16;  // vector registers
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_partial(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static V broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  // Keeps v in a register: the compiler otherwise folds the load behind v
  // into every FMA that uses it (one load per FMA instead of one per vector).
  static void keep(V& v) { asm volatile("" : "+v"(v)); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  // Two adjacent positions in one vector (f32-conv-cin1-pairs.h): lanes 2c
  // and 2c + 1 are channel c of positions p and p + 1.
  // [p[0], p[1]] in every lane pair: one 8-byte broadcast, a load-port uop only.
  static V broadcast_pair(const float* p) {
    const void* bytes = p;  // any 4-byte alignment
    double d;
    std::memcpy(&d, bytes, 8);
    return _mm256_castpd_ps(_mm256_set1_pd(d));
  }
  // [w0, w0, w1, w1, ..., w3, w3] from L / 2 floats.
  static V dup_pairs(const float* w) {
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(w)), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
  }
  // Even lanes to y0[0..n), odd lanes to y1[0..n) (y1 null: none), n <= L / 2.
  static void store_pairs(float* y0, float* y1, V v, int n) {
    const V u = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    const __m128i m = _mm256_castsi256_si128(mask(n));
    _mm_maskstore_ps(y0, m, _mm256_castps256_ps128(u));
    if (y1 != nullptr) _mm_maskstore_ps(y1, m, _mm256_extractf128_ps(u, 1));
  }
  // out[i] = the sum of v[i]'s lanes, i < 4 (one hadd tree for all four).
  static void sum_lanes4(const V* v, float* out) {
    const V u = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // Non-temporal store (p % 32 == 0); the thread pool fences once per chunk.
  static constexpr bool kHasStream = true;
  static void stream(float* p, V v) { _mm256_stream_ps(p, v); }
  static void store_partial(float* p, V v, int n) { _mm256_maskstore_ps(p, mask(n), v); }

  static constexpr bool kHasF16 = true;
  static V load_f16(const std::uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static V load_f16_partial(const std::uint16_t* p, int n) {
    std::uint16_t t[8] = {};
    const void* bytes = p;  // may be unaligned (a numpy view): copied untyped
    std::memcpy(t, bytes, std::size_t(n) * 2);
    return load_f16(t);
  }
  static void store_f16(std::uint16_t* p, V v) {
    _mm_storeu_si128((__m128i*)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void store_f16_partial(std::uint16_t* p, V v, int n) {
    std::uint16_t t[8];
    store_f16(t, v);
    void* bytes = p;
    std::memcpy(bytes, t, std::size_t(n) * 2);
  }
  static constexpr bool kHasBF16Load = true;
  static V load_bf16(const std::uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  // f32 -> bf16 as detail::float_to_bf16: round to nearest even, NaNs quieted
  // (bit 6 of the upper half set), in integer lanes (no native instruction).
  static constexpr bool kHasBF16Store = true;
  static __m128i to_bf16(V v) {
    const __m256i u = _mm256_castps_si256(v), hi = _mm256_srli_epi32(u, 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(hi, _mm256_set1_epi32(1)));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i r = _mm256_blendv_epi8(rounded, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));  // lanes < 2^16
  }
  static void store_bf16(std::uint16_t* p, V v) { _mm_storeu_si128((__m128i*)p, to_bf16(v)); }
  static void store_bf16_partial(std::uint16_t* p, V v, int n) {
    std::uint16_t t[8];
    store_bf16(t, v);
    void* bytes = p;
    std::memcpy(bytes, t, std::size_t(n) * 2);
  }
  static V load_bf16_partial(const std::uint16_t* p, int n) {
    std::uint16_t t[8] = {};
    const void* bytes = p;  // may be unaligned (a numpy view): copied untyped
    std::memcpy(t, bytes, std::size_t(n) * 2);
    return load_bf16(t);
  }
};

}  // namespace
