#include "epilogue.h"

#include <cmath>

#include "../core/element.h"
#include "conv_tile.h"

namespace volconv::cpu {

EpilogueRun::EpilogueRun(const detail::ConvCall& call) {
  const Epilogue& e = call.geometry.params.epilogue;
  active_ = !e.empty();
  act_ = e.activation;
  out_ = call.geometry.out;
  if (e.bias) {
    // Converted once per call (C_out values), in the accumulator's type.
    const ConstVectorView& b = *e.bias;
    const bool f64 = call.output.dtype == DType::float64;
    (f64 ? bias64_.resize(std::size_t(b.size)) : bias32_.resize(std::size_t(b.size)));
    visit_dtype(b.dtype, [&](auto el) {
      using E = decltype(el);
      const auto* src = static_cast<const typename E::storage*>(b.data);
      for (std::int64_t i = 0; i < b.size; ++i) {
        if (f64)
          bias64_[std::size_t(i)] = E::template load<double>(load_any(src + i * b.stride));
        else
          bias32_[std::size_t(i)] = E::template load<float>(load_any(src + i * b.stride));
      }
    });
  }
  if (e.residual) {
    res_ = static_cast<const char*>(e.residual->data);
    res_dtype_ = e.residual->dtype;
    rs_ = e.residual->strides;
  }
}

namespace {

// Written from the definitions (volconv/epilogue.h); T is float or double.
template <class T> T silu(T x) { return x / (T(1) + std::exp(-x)); }
template <class T> T gelu_tanh(T x) {
  const T k = T(0.7978845608028654);  // sqrt(2 / pi)
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}

}  // namespace

template <class T>
void EpilogueRun::apply_typed(T* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off,
                              const std::vector<T>& bias) const {
  // Simple loops over contiguous values: the compiler vectorises them.
  if (!bias.empty()) {
    const T* b = bias.data() + chan0;
    for (std::int64_t j = 0; j < n; ++j) v[j] += b[j];
  }
  switch (act_) {
    case Activation::none: break;
    case Activation::relu:
      for (std::int64_t j = 0; j < n; ++j) v[j] = v[j] < T(0) ? T(0) : v[j];  // NaN stays NaN
      break;
    case Activation::silu:
      for (std::int64_t j = 0; j < n; ++j) v[j] = silu(v[j]);
      break;
    case Activation::gelu_tanh:
      for (std::int64_t j = 0; j < n; ++j) v[j] = gelu_tanh(v[j]);
      break;
  }
  if (res_) {
    visit_dtype(res_dtype_, [&](auto el) {
      using E = decltype(el);
      const std::int64_t cs = rs_[4];
      // Elements may sit off their natural alignment: read through load_any.
      const auto* r = reinterpret_cast<const typename E::storage*>(res_) + res_off + chan0 * cs;
      if (cs == 1)
        for (std::int64_t j = 0; j < n; ++j) v[j] += E::template load<T>(load_any(r + j));
      else
        for (std::int64_t j = 0; j < n; ++j) v[j] += E::template load<T>(load_any(r + j * cs));
    });
  }
}

void EpilogueRun::apply(float* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off) const {
  apply_typed(v, n, chan0, res_off, bias32_);
}

void EpilogueRun::apply(double* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off) const {
  apply_typed(v, n, chan0, res_off, bias64_);
}

void EpilogueRun::apply_tile(float* c, int ldc, const TileRows& rows, std::int64_t chan0, int nc) const {
  std::int64_t m = rows.m0;
  std::int64_t ow = m % out_[2], rest = m / out_[2];
  std::int64_t oh = rest % out_[1];
  rest /= out_[1];
  std::int64_t od = rest % out_[0], n = rest / out_[0];
  for (int r = 0; r < rows.valid; ++r) {
    apply(c + std::int64_t(r) * ldc, nc, chan0, res_ ? residual_offset(n, od, oh, ow) : 0);
    if (++ow == out_[2]) {
      ow = 0;
      if (++oh == out_[1]) {
        oh = 0;
        if (++od == out_[0]) od = 0, ++n;
      }
    }
  }
}

}  // namespace volconv::cpu
