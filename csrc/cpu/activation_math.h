// The epilogue's activations (volconv/epilogue.h) on one value, T float or
// double: the one scalar definition the fused epilogue and
// activation_forward share (float32 rows run activate_f32's vector loop).
#pragma once

#include <cmath>

#include "volconv/epilogue.h"

namespace volconv::cpu {

template <class T> T silu(T x) { return x / (T(1) + std::exp(-x)); }

// 0.5 x (1 + tanh(u)) = x * sigmoid(2u): one exp instead of a tanh (several
// times cheaper in libm); exp overflowing to inf gives the limit -0.
template <class T> T gelu_tanh(T x) {
  const T k = T(0.7978845608028654);  // sqrt(2 / pi)
  const T u = k * (x + T(0.044715) * x * x * x);
  return x / (T(1) + std::exp(T(-2) * u));
}

template <class T> T relu(T x) { return x < T(0) ? T(0) : x; }  // NaN stays NaN

template <class T> T activate(Activation act, T x) {
  switch (act) {
    case Activation::none: return x;
    case Activation::relu: return relu(x);
    case Activation::silu: return silu(x);
    case Activation::gelu_tanh: return gelu_tanh(x);
  }
  return x;
}

}  // namespace volconv::cpu
