#include "nonfinite_scatter.h"

#include <cmath>
#include <limits>
#include <vector>

#include "../core/element.h"
#include "nonfinite_weights.h"
#include "problem_elements.h"
#include "thread_pool.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

// The non-finite elements of one logical tap (output channel co, tap k in
// output order, after flip) of the weight: input channel ci, value w.
struct BadTap {
  std::int64_t co = 0, k[3] = {0, 0, 0};
  std::vector<std::int64_t> ci;
  std::vector<double> w;
};

// The stored weight element of logical output channel co, stored tap s and
// input channel c of its group.
const char* weight_at(const ConvProblem& p, std::int64_t co, const std::int64_t (&s)[3], std::int64_t c) {
  const ConvProblemGeometry& g = p.geometry;
  const Shape5& ws = p.weight.strides;
  const bool transposed = p.weight_layout == detail::WeightLayout::in_k_out;
  const std::int64_t a = transposed ? co / g.out_channels_per_group() * g.in_channels_per_group() + c : co;
  const std::int64_t b = transposed ? co % g.out_channels_per_group() : c;
  const std::int64_t es = std::int64_t(dtype_size(p.weight.dtype));
  const std::int64_t off = a * ws[0] + s[0] * ws[1] + s[1] * ws[2] + s[2] * ws[3] + b * ws[4];
  return static_cast<const char*>(p.weight.data) + off * es;
}

std::vector<BadTap> nonfinite_taps(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cig = g.in_channels_per_group(), cog = g.out_channels_per_group();
  std::vector<BadTap> taps;
  for (std::int64_t co = 0; co < g.out_channels; ++co)
    for (std::int64_t s0 = 0; s0 < g.kernel[0]; ++s0)
      for (std::int64_t s1 = 0; s1 < g.kernel[1]; ++s1)
        for (std::int64_t s2 = 0; s2 < g.kernel[2]; ++s2) {
          const std::int64_t s[3] = {s0, s1, s2};
          BadTap t;
          for (std::int64_t c = 0; c < cig; ++c) {
            const char* e = weight_at(p, co, s, c);
            if (!is_nonfinite(p.weight.dtype, e)) continue;
            t.ci.push_back(co / cog * cig + c);
            t.w.push_back(load_double(p.weight.dtype, e));
          }
          if (t.ci.empty()) continue;
          t.co = co;
          for (int i = 0; i < 3; ++i) t.k[i] = g.flip ? g.kernel[i] - 1 - s[i] : s[i];
          taps.push_back(std::move(t));
        }
  return taps;
}

const char* input_at(const ConvProblem& p, std::int64_t n, std::int64_t d, std::int64_t h, std::int64_t w,
                     std::int64_t c) {
  const Shape5& xs = p.input.strides;
  return static_cast<const char*>(p.input.data) +
         (n * xs[0] + d * xs[1] + h * xs[2] + w * xs[3] + c * xs[4]) * std::int64_t(dtype_size(p.input.dtype));
}

// Output (n, o, co) summed from all of its products, in double.
double exact_output(const ConvProblem& p, std::int64_t n, const std::int64_t (&o)[3], std::int64_t co) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cig = g.in_channels_per_group(), ci0 = co / g.out_channels_per_group() * cig;
  double sum = 0;
  for (std::int64_t k0 = 0; k0 < g.kernel[0]; ++k0)
    for (std::int64_t k1 = 0; k1 < g.kernel[1]; ++k1)
      for (std::int64_t k2 = 0; k2 < g.kernel[2]; ++k2) {
        const std::int64_t k[3] = {k0, k1, k2};
        std::int64_t src[3], s[3];
        bool real = true;
        for (int i = 0; i < 3; ++i) {
          src[i] = problem_source(g, i, o[i], k[i]);
          s[i] = g.flip ? g.kernel[i] - 1 - k[i] : k[i];
          real = real && src[i] >= 0;
        }
        if (!real) continue;
        for (std::int64_t c = 0; c < cig; ++c)
          sum += load_double(p.input.dtype, input_at(p, n, src[0], src[1], src[2], ci0 + c)) *
                 load_double(p.weight.dtype, weight_at(p, co, s, c));
      }
  return sum;
}

}  // namespace

void add_nonfinite_weight_terms(const ConvProblem& p) {
  const std::vector<BadTap> taps = nonfinite_taps(p);
  if (taps.empty()) return;
  const ConvProblemGeometry& g = p.geometry;
  const Shape5& ys = p.result.strides;
  const std::int64_t y_es = std::int64_t(dtype_size(p.result.dtype));
  // One thread per output row: each output is written by one thread, its
  // terms added in a fixed order.
  parallel_for(g.batch * g.out[0] * g.out[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t oh = row % g.out[1], od = row / g.out[1] % g.out[0], n = row / g.out[1] / g.out[0];
      for (const BadTap& t : taps) {
        const std::int64_t id = problem_source(g, 0, od, t.k[0]), ih = problem_source(g, 1, oh, t.k[1]);
        if (id < 0 || ih < 0) continue;
        for (std::int64_t ow = 0; ow < g.out[2]; ++ow) {
          const std::int64_t iw = problem_source(g, 2, ow, t.k[2]);
          if (iw < 0) continue;
          char* y = static_cast<char*>(p.result.data) +
                    (n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3] + t.co * ys[4]) * y_es;
          double v = load_double(p.result.dtype, y);
          for (std::size_t e = 0; e < t.ci.size(); ++e) {
            const double x = load_double(p.input.dtype, input_at(p, n, id, ih, iw, t.ci[e]));
            if (std::isinf(x) && std::isinf(t.w[e])) {
              // The phases' 0 * inf made this output NaN where inf * inf
              // counts: sum it again. (Later terms only repeat infinite
              // products, which leave a non-finite sum as it is.)
              const std::int64_t o[3] = {od, oh, ow};
              v = exact_output(p, n, o, t.co);
              break;
            }
            v += x * t.w[e];
          }
          store_double(p.result.dtype, y, v);
        }
      }
    }
  });
}

void propagate_nonfinite_weights(const ConvProblem& p) {
  const std::vector<BadTap> taps = nonfinite_taps(p);
  if (taps.empty()) return;
  const ConvProblemGeometry& g = p.geometry;
  const Shape5& ys = p.result.strides;
  const std::int64_t y_es = std::int64_t(dtype_size(p.result.dtype));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  parallel_for(g.batch * g.out[0] * g.out[1], [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t oh = row % g.out[1], od = row / g.out[1] % g.out[0], n = row / g.out[1] / g.out[0];
      for (const BadTap& t : taps) {
        const bool dh_pad = problem_source(g, 0, od, t.k[0]) < 0 || problem_source(g, 1, oh, t.k[1]) < 0;
        for (std::int64_t ow = 0; ow < g.out[2]; ++ow)
          if (dh_pad || problem_source(g, 2, ow, t.k[2]) < 0)
            store_double(p.result.dtype,
                         static_cast<char*>(p.result.data) +
                             (n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3] + t.co * ys[4]) * y_es,
                         nan);
      }
    }
  });
}

}  // namespace volconv::cpu
