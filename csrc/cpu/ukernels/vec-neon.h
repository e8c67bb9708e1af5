// Vector traits for AArch64 NEON (4 floats). Apple silicon and other ARMv8
// CPUs; compiled only where __aarch64__ is defined.
#pragma once

#include <arm_neon.h>

#include <cstdint>
#include <cstring>

namespace {

struct VecNeon {
  static constexpr int L = 4;
  static constexpr int kRegs = 32;  // vector registers
  using V = float32x4_t;
  static V zero() { return vdupq_n_f32(0.0f); }
  static V load(const float* p) { return vld1q_f32(p); }
  static V load_partial(const float* p, int n) {
    float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    std::memcpy(t, p, std::size_t(n) * 4);
    return vld1q_f32(t);
  }
  static V broadcast(const float* p) { return vld1q_dup_f32(p); }
  // Keeps v in a register: the compiler otherwise folds the load behind v
  // into every FMA that uses it (one load per FMA instead of one per vector).
  static void keep(V& v) { asm volatile("" : "+w"(v)); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  // out[i] = the sum of v[i]'s lanes, i < 4 (pairwise adds).
  static void sum_lanes4(const V* v, float* out) {
    vst1q_f32(out, vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3])));
  }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static constexpr bool kHasStream = false;  // plain stores only
  static void stream(float* p, V v) { store(p, v); }
  static void store_partial(float* p, V v, int n) {
    float t[4];
    vst1q_f32(t, v);
    std::memcpy(p, t, std::size_t(n) * 4);
  }

  // Every AArch64 CPU converts fp16 <-> fp32 in hardware (FCVTL / FCVTN, RNE).
  static constexpr bool kHasF16 = true;
  static V load_f16(const std::uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static V load_f16_partial(const std::uint16_t* p, int n) {
    std::uint16_t t[4] = {0, 0, 0, 0};
    std::memcpy(t, p, std::size_t(n) * 2);
    return load_f16(t);
  }
  static void store_f16(std::uint16_t* p, V v) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static void store_f16_partial(std::uint16_t* p, V v, int n) {
    std::uint16_t t[4];
    store_f16(t, v);
    std::memcpy(p, t, std::size_t(n) * 2);
  }
  static constexpr bool kHasBF16Store = false;  // the scalar float_to_bf16 (store_tile declines)
  static void store_bf16(std::uint16_t*, V) {}
  static void store_bf16_partial(std::uint16_t*, V, int) {}
  static constexpr bool kHasBF16Load = true;
  static V load_bf16(const std::uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  static V load_bf16_partial(const std::uint16_t* p, int n) {
    std::uint16_t t[4] = {0, 0, 0, 0};
    std::memcpy(t, p, std::size_t(n) * 2);
    return load_bf16(t);
  }
};

}  // namespace
