#include "epilogue.h"

#include <cmath>
#include <type_traits>

#include "../core/element.h"
#include "activation_f32.h"
#include "activation_math.h"
#include "conv_tile.h"

namespace volconv::cpu {

EpilogueRun::EpilogueRun(const detail::ConvCall& call) {
  const Epilogue& e = call.geometry.params.epilogue;
  active_ = !e.empty();
  avx2_ = activation_avx2();
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

// One pass per value: v = act(v + b) + r, the bias (B) and a residual of the
// accumulator's own type with contiguous channels (R) chosen at compile time.
template <bool B, bool R, class T, class Act>
void fused_pass(T* v, std::int64_t n, const T* b, const T* r, Act act) {
  for (std::int64_t j = 0; j < n; ++j) {
    T x = v[j];
    if constexpr (B) x += b[j];
    x = act(x);
    if constexpr (R) x += load_any(r + j);  // r may sit off its natural alignment
    v[j] = x;
  }
}

template <class T, class Act>
void fused(T* v, std::int64_t n, const T* b, const T* r, Act act) {
  if (b)
    r ? fused_pass<true, true>(v, n, b, r, act) : fused_pass<true, false>(v, n, b, r, act);
  else
    r ? fused_pass<false, true>(v, n, b, r, act) : fused_pass<false, false>(v, n, b, r, act);
}

}  // namespace

template <class T>
void EpilogueRun::apply_typed(T* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off,
                              const std::vector<T>& bias) const {
  const T* b = bias.empty() ? nullptr : bias.data() + chan0;
  // A residual of another storage type, or strided channels, is added after
  // the fused pass (converted on read).
  const DType own = std::is_same_v<T, double> ? DType::float64 : DType::float32;
  const bool res_in_pass = res_ && res_dtype_ == own && rs_[4] == 1;
  const T* r = res_in_pass ? reinterpret_cast<const T*>(res_) + res_off + chan0 : nullptr;
  bool vectorised = false;
  if constexpr (std::is_same_v<T, float>) {
    vectorised = act_ == Activation::silu || act_ == Activation::gelu_tanh;
    if (vectorised) activate_f32(v, n, b, r, act_, avx2_);  // a polynomial exp, in SIMD
  }
  if (!vectorised) {
    switch (act_) {
      case Activation::none: fused(v, n, b, r, [](T x) { return x; }); break;
      case Activation::relu: fused(v, n, b, r, [](T x) { return relu(x); }); break;
      case Activation::silu: fused(v, n, b, r, [](T x) { return silu(x); }); break;
      case Activation::gelu_tanh: fused(v, n, b, r, [](T x) { return gelu_tanh(x); }); break;
    }
  }
  if (res_ && !res_in_pass) {
    visit_dtype(res_dtype_, [&](auto el) {
      using E = decltype(el);
      const std::int64_t cs = rs_[4];
      const auto* rr = reinterpret_cast<const typename E::storage*>(res_) + res_off + chan0 * cs;
      for (std::int64_t j = 0; j < n; ++j) v[j] += E::template load<T>(load_any(rr + j * cs));
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
