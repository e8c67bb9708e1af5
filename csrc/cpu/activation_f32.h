// The epilogue's silu and gelu_tanh on float32 rows, vectorised: v = act(v +
// b) + r with a polynomial exp the compiler turns into SIMD (libm's expf is
// one call per value and costs as much as a small convolution's FMAs).
// x86 runs an AVX2 + FMA clone when the active kernel set has them.
#pragma once

#include <cstdint>

#include "volconv/epilogue.h"

namespace volconv::cpu {

// activation: silu or gelu_tanh. b (bias) and r (residual, any alignment) may
// be null. avx2: use the AVX2 + FMA clone (x86 only; ignored elsewhere).
void activate_f32(float* v, std::int64_t n, const float* b, const float* r, Activation activation, bool avx2);

// out = g * activation'(z) (silu or gelu_tanh); z, g and out may not overlap
// except out == g.
void activation_grad_f32(const float* z, const float* g, float* out, std::int64_t n, Activation activation,
                         bool avx2);

// Whether the active kernel set runs on AVX2 + FMA (every x86 set above generic).
bool activation_avx2();

}  // namespace volconv::cpu
