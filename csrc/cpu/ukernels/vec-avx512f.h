// Vector traits for AVX-512F (16 floats). Include only from a translation
// unit compiled with -mavx512f -mavx512bw -mavx512vl -mfma -mf16c; the traits
// live in an unnamed namespace so nothing here is shared with other ISAs.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace {

struct VecAvx512f {
  static constexpr int L = 16;
  static constexpr int kRegs = 32;  // vector registers
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }
  static V load_partial(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static V broadcast(const float* p) {  // p may be unaligned (a numpy view)
    const void* bytes = p;
    float v;
    std::memcpy(&v, bytes, 4);
    return _mm512_set1_ps(v);
  }
  // Keeps v in a register: the compiler otherwise folds the load behind v
  // into every FMA that uses it (one load per FMA instead of one per vector).
  static void keep(V& v) { asm volatile("" : "+v"(v)); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  // Two adjacent positions in one vector (f32-conv-cin1-pairs.h): lanes 2c
  // and 2c + 1 are channel c of positions p and p + 1.
  // [p[0], p[1]] in every lane pair: one 8-byte broadcast, a load-port uop only.
  static V broadcast_pair(const float* p) {
    const void* bytes = p;  // any 4-byte alignment
    double d;
    std::memcpy(&d, bytes, 8);
    return _mm512_castpd_ps(_mm512_set1_pd(d));
  }
  // [w0, w0, w1, w1, ..., w7, w7] from L / 2 floats.
  static V dup_pairs(const float* w) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(w)));
  }
  // Even lanes to y0[0..n), odd lanes to y1[0..n) (y1 null: none), n <= L / 2.
  static void store_pairs(float* y0, float* y1, V v, int n) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    const V u = _mm512_permutexvar_ps(idx, v);
    const __mmask8 m = __mmask8((1u << n) - 1u);
    _mm256_mask_storeu_ps(y0, m, _mm512_castps512_ps256(u));
    if (y1 != nullptr) _mm256_mask_storeu_ps(y1, m, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  }
  // out[i] = the sum of v[i]'s lanes, i < 4: halves folded to 256 bits, then one hadd tree.
  static void sum_lanes4(const V* v, float* out) {
    __m256 h[4];
    for (int i = 0; i < 4; ++i)
      h[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1)));
    const __m256 u = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  // Non-temporal store of one aligned cache line (p % 64 == 0); the thread
  // pool fences once per chunk.
  static constexpr bool kHasStream = true;
  static void stream(float* p, V v) { _mm512_stream_ps(p, v); }
  static void store_partial(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }

  static constexpr bool kHasF16 = true;
  static V load_f16(const std::uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static V load_f16_partial(const std::uint16_t* p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p));
  }
  static void store_f16(std::uint16_t* p, V v) {
    _mm256_storeu_si256((__m256i*)p, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static void store_f16_partial(std::uint16_t* p, V v, int n) {
    _mm256_mask_storeu_epi16(p, mask(n), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // bf16 -> f32 is a 16-bit shift: exact, no special instruction needed.
  static constexpr bool kHasBF16Load = true;
  static V load_bf16(const std::uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
  }
  static V load_bf16_partial(const std::uint16_t* p, int n) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask(n), p)), 16));
  }
  // f32 -> bf16 as detail::float_to_bf16 (round to nearest even, NaNs
  // quieted) in integer lanes, for CPUs without AVX512_BF16's instruction.
  static constexpr bool kHasBF16Store = true;
  static __m256i to_bf16(V v) {
    const __m512i u = _mm512_castps_si512(v), hi = _mm512_srli_epi32(u, 16);
    const __mmask16 nan =
        _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(hi, _mm512_set1_epi32(0x40))));
  }
  static void store_bf16(std::uint16_t* p, V v) { _mm256_storeu_si256((__m256i*)p, to_bf16(v)); }
  static void store_bf16_partial(std::uint16_t* p, V v, int n) { _mm256_mask_storeu_epi16(p, mask(n), to_bf16(v)); }
};

}  // namespace
