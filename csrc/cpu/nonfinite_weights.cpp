#include "nonfinite_weights.h"

#include <limits>
#include <vector>

#include "../core/element.h"
#include "padding_map.h"
#include "thread_pool.h"

namespace volconv::cpu {
namespace {

// A value is NaN or infinite exactly when its exponent bits are all ones.
constexpr std::uint16_t kHalfExponent = 0x7c00, kBf16Exponent = 0x7f80;
constexpr std::uint32_t kFloatExponent = 0x7f800000u;
constexpr std::uint64_t kDoubleExponent = 0x7ff0000000000000ull;

// One (output channel, tap) whose weights hold a NaN or an infinity.
struct BadTap {
  std::int64_t co, kd, kh, kw;
};

// Element bits read in place at any alignment (no typed-pointer UB).
template <class Bits> struct Unaligned {
  typedef Bits __attribute__((aligned(1), may_alias)) type;
};

template <class Bits>
bool any_nonfinite(const char* p, std::int64_t n, std::int64_t stride_bytes, Bits mask) {
  Bits hits = 0;
  if (stride_bytes == std::int64_t(sizeof(Bits))) {
    // Contiguous: blocks of 16 have a fixed trip count, which the compiler
    // vectorizes at -O2 (3x the element-wise loop).
    const auto* q = reinterpret_cast<const typename Unaligned<Bits>::type*>(p);
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; ++j) hits |= Bits((q[i + j] & mask) == mask);
    for (; i < n; ++i) hits |= Bits((q[i] & mask) == mask);
    return hits != 0;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const auto* q = reinterpret_cast<const typename Unaligned<Bits>::type*>(p + i * stride_bytes);
    hits |= Bits((*q & mask) == mask);
  }
  return hits != 0;
}

bool any_nonfinite_run(DType dtype, const char* p, std::int64_t n, std::int64_t step) {
  switch (dtype) {
    case DType::float16: return any_nonfinite<std::uint16_t>(p, n, step, kHalfExponent);
    case DType::bfloat16: return any_nonfinite<std::uint16_t>(p, n, step, kBf16Exponent);
    case DType::float32: return any_nonfinite(p, n, step, kFloatExponent);
    case DType::float64: break;
  }
  return any_nonfinite(p, n, step, kDoubleExponent);
}

std::vector<BadTap> nonfinite_taps(const ConvGeometry& g, const ConstTensorView& w) {
  const std::int64_t es = std::int64_t(dtype_size(w.dtype));
  const Shape5& s = w.strides;
  const auto* base = static_cast<const char*>(w.data);
  std::vector<BadTap> bad;
  for (std::int64_t co = 0; co < g.out_channels; ++co)
    for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
          const char* p = base + (co * s[0] + kd * s[1] + kh * s[2] + kw * s[3]) * es;
          const std::int64_t n = g.in_channels_per_group, step = s[4] * es;
          bool b = false;
          switch (w.dtype) {
            case DType::float16: b = any_nonfinite<std::uint16_t>(p, n, step, kHalfExponent); break;
            case DType::bfloat16: b = any_nonfinite<std::uint16_t>(p, n, step, kBf16Exponent); break;
            case DType::float32: b = any_nonfinite(p, n, step, kFloatExponent); break;
            case DType::float64: b = any_nonfinite(p, n, step, kDoubleExponent); break;
          }
          if (b) bad.push_back(BadTap{co, kd, kh, kw});
        }
  return bad;
}

}  // namespace

bool is_nonfinite(DType dtype, const void* p) {
  return any_nonfinite_run(dtype, static_cast<const char*>(p), 1, std::int64_t(dtype_size(dtype)));
}

bool any_nonfinite(const ConstTensorView& v) {
  const std::int64_t es = std::int64_t(dtype_size(v.dtype));
  const Shape5& n = v.shape;
  const Shape5& s = v.strides;
  const auto* base = static_cast<const char*>(v.data);
  // A contiguous view is one run (5x faster for short channel rows).
  if (v.strides == contiguous_strides(n)) return any_nonfinite_run(v.dtype, base, numel(n), es);
  bool hit = false;
  for (std::int64_t a = 0; a < n[0] && !hit; ++a)
    for (std::int64_t b = 0; b < n[1] && !hit; ++b)
      for (std::int64_t c = 0; c < n[2] && !hit; ++c)
        for (std::int64_t d = 0; d < n[3] && !hit; ++d)
          hit = any_nonfinite_run(v.dtype, base + (a * s[0] + b * s[1] + c * s[2] + d * s[3]) * es, n[4], s[4] * es);
  return hit;
}

void propagate_nonfinite_weights(const detail::ConvCall& call) {
  const ConvGeometry& g = call.geometry;
  const ConvParams& p = g.params;
  // Padding that reads the input (padding_map.h) is no padding here: its
  // taps are read like any other.
  bool padded = false;
  for (int i = 0; i < 3; ++i)
    padded |= p.padding_mode[i] == PaddingMode::zeros && (p.padding_lo[i] > 0 || p.padding_hi[i] > 0);
  if (!padded) return;  // without zero padding every tap of every output is read
  const PaddingMap pad(g);
  const std::vector<BadTap> bad = nonfinite_taps(g, call.weight);
  if (bad.empty()) return;
  visit_dtype(call.output.dtype, [&](auto e) {
    using E = decltype(e);
    auto* y = static_cast<typename E::storage*>(call.output.data);
    const Shape5& ys = call.output.strides;
    const auto nan = E::template store<double>(std::numeric_limits<double>::quiet_NaN());
    parallel_for(g.batch * g.out[0] * g.out[1], [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t row = begin; row < end; ++row) {
        const std::int64_t oh = row % g.out[1], od = row / g.out[1] % g.out[0], n = row / g.out[1] / g.out[0];
        for (const BadTap& t : bad) {
          const std::int64_t id = od * p.stride[0] - p.padding_lo[0] + t.kd * p.dilation[0];
          const std::int64_t ih = oh * p.stride[1] - p.padding_lo[1] + t.kh * p.dilation[1];
          const bool dh_pad = pad.source(0, id) < 0 || pad.source(1, ih) < 0;
          for (std::int64_t ow = 0; ow < g.out[2]; ++ow) {
            const std::int64_t iw = ow * p.stride[2] - p.padding_lo[2] + t.kw * p.dilation[2];
            if (dh_pad || pad.source(2, iw) < 0)
              store_any(y + n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3] + t.co * ys[4], nan);
          }
        }
      }
    });
  });
}

}  // namespace volconv::cpu
