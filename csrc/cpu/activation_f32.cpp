#include "activation_f32.h"

#include <cstring>
#include <string>

#include "cpu_features.h"

namespace volconv::cpu {
namespace {

// exp(a) for float32: 2^n * p(x), n = round(a / ln 2), x = a - n ln 2 in two
// parts (Cody-Waite), p Cephes' expf polynomial (about 1 ulp). Branch-free so
// that loops over it vectorise. Above 88.72 the result is +inf as libm's
// (silu(-inf) stays NaN, silu(-100) -0); below -87.3 it is 2^-126-ish, as
// good as 0 beside the 1 it is added to. A NaN is computed as 0 (the caller's
// x / (1 + e) keeps the NaN).
__attribute__((always_inline)) inline float exp_approx(float a) {
  float x = a < -87.3f ? -87.3f : a;
  x = x > 88.72f ? 88.72f : x;
  x = x == x ? x : 0.0f;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float fn = (x * 1.44269504088896341f + magic) - magic;
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n in two halves: n is in [-126, 128] and 2^128 is not a float.
  const std::int32_t n = std::int32_t(fn), h = n >> 1;
  const std::int32_t b1 = (h + 127) << 23, b2 = (n - h + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  const float e = p * s1 * s2;
  return a > 88.72f ? __builtin_inff() : e;
}

// x / (1 + exp(-x)) and x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3)
// (the identities of epilogue.cpp's float64 versions).
// always_inline: the loops are compiled inside each clone, with its ISA.
template <bool Gelu, bool B, bool R>
__attribute__((always_inline)) inline void act_loop(float* v, std::int64_t n, const float* b, const float* r) {
  for (std::int64_t j = 0; j < n; ++j) {
    float x = v[j];
    if constexpr (B) x += b[j];
    const float a = Gelu ? -1.5957691216057308f * (x + 0.044715f * x * x * x) : -x;
    float y = x / (1.0f + exp_approx(a));
    if constexpr (R) {
      float rv;
      std::memcpy(&rv, r + j, 4);  // r may sit off its natural alignment
      y += rv;
    }
    v[j] = y;
  }
}

template <bool Gelu>
__attribute__((always_inline)) inline void act_rows(float* v, std::int64_t n, const float* b, const float* r) {
  if (b)
    r ? act_loop<Gelu, true, true>(v, n, b, r) : act_loop<Gelu, true, false>(v, n, b, r);
  else
    r ? act_loop<Gelu, false, true>(v, n, b, r) : act_loop<Gelu, false, false>(v, n, b, r);
}

// The backward: out = g * act'(z) for silu and gelu_tanh, with the same exp;
// the formulas are torch's silu_backward / gelu_backward(approximate="tanh"),
// so infinities give the same NaNs (1 - t * t, not 4e / (1 + e)^2).
template <bool Gelu>
__attribute__((always_inline)) inline void grad_loop(const float* z, const float* g, float* out, std::int64_t n) {
  for (std::int64_t j = 0; j < n; ++j) {
    const float x = z[j];
    float d;
    if constexpr (Gelu) {
      const float k = 0.7978845608028654f;  // sqrt(2 / pi)
      // tanh(u) = (1 - e) / (1 + e), e = exp(-2u) capped where it is already
      // "infinite" beside 1 (so t is exactly -1 there, not inf / inf).
      float a = -2.0f * k * (x + 0.044715f * x * x * x);
      a = a > 88.0f ? 88.0f : a;
      const float e = exp_approx(a);
      const float t = (1.0f - e) / (1.0f + e);
      d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    } else {
      const float s = 1.0f / (1.0f + exp_approx(-x));
      d = s * (1.0f + x * (1.0f - s));
    }
    out[j] = g[j] * d;
  }
}

void activate_baseline(float* v, std::int64_t n, const float* b, const float* r, bool gelu) {
  gelu ? act_rows<true>(v, n, b, r) : act_rows<false>(v, n, b, r);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VOLCONV_ACTIVATION_AVX2 1
__attribute__((target("avx2,fma"))) void activate_avx2(float* v, std::int64_t n, const float* b, const float* r,
                                                        bool gelu) {
  gelu ? act_rows<true>(v, n, b, r) : act_rows<false>(v, n, b, r);
}
__attribute__((target("avx2,fma"))) void grad_avx2(const float* z, const float* g, float* out, std::int64_t n,
                                                    bool gelu) {
  gelu ? grad_loop<true>(z, g, out, n) : grad_loop<false>(z, g, out, n);
}
#endif

void grad_baseline(const float* z, const float* g, float* out, std::int64_t n, bool gelu) {
  gelu ? grad_loop<true>(z, g, out, n) : grad_loop<false>(z, g, out, n);
}

}  // namespace

void activation_grad_f32(const float* z, const float* g, float* out, std::int64_t n, Activation activation,
                         bool avx2) {
  const bool gelu = activation == Activation::gelu_tanh;
#if defined(VOLCONV_ACTIVATION_AVX2)
  if (avx2) return grad_avx2(z, g, out, n, gelu);
#else
  (void)avx2;
#endif
  grad_baseline(z, g, out, n, gelu);
}

void activate_f32(float* v, std::int64_t n, const float* b, const float* r, Activation activation, bool avx2) {
  const bool gelu = activation == Activation::gelu_tanh;
#if defined(VOLCONV_ACTIVATION_AVX2)
  if (avx2) return activate_avx2(v, n, b, r, gelu);
#else
  (void)avx2;
#endif
  activate_baseline(v, n, b, r, gelu);
}

bool activation_avx2() {
  const std::string isa = active_kernels().isa;
  return isa.compare(0, 3, "avx") == 0;
}

}  // namespace volconv::cpu
