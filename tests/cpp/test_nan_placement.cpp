// Where NaN and inf land in conv_transpose3d and conv3d_grad_input (float32,
// on the kernels this build runs: NEON under qemu in CI, AVX-512 on an
// AVX-512 host): the NaN, +inf and -inf masks of volconv's result against a
// float64 scatter, torch's model of both ops (each real input element times
// each weight, added at the output it reaches: a NaN weight never meets the
// padding or an inserted zero). tests/test_nan_placement_training.py checks
// the same against torch itself on every kernel set the host has.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

struct Case {
  std::int64_t size, cin, cout, k, s, p, d, g, op;
};

// Index of (n, a, b, c, ch) in a contiguous (N, A, B, C, CH) array.
std::int64_t at(const Shape5& sh, std::int64_t n, std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t ch) {
  return (((n * sh[1] + a) * sh[2] + b) * sh[3] + c) * sh[4] + ch;
}

// y[n, o] += x[n, i] * w[co, k, c] for o = i*s - p + k*d inside y: x has the
// conv's output channels (cout, split in groups of cout/g), y the input's.
// `gather` false: y is conv_transpose3d(x, w) with w (cout_t, K, cin_t/g).
std::vector<double> scatter(const std::vector<float>& x, const Shape5& xs, const std::vector<float>& w,
                            const Shape5& ws, const Shape5& ys, const Case& c, bool transposed_weight) {
  std::vector<double> y(std::size_t(ys[0] * ys[1] * ys[2] * ys[3] * ys[4]), 0.0);
  const std::int64_t xg = xs[4] / c.g, yg = ys[4] / c.g;
  for (std::int64_t n = 0; n < xs[0]; ++n)
    for (std::int64_t i0 = 0; i0 < xs[1]; ++i0)
      for (std::int64_t i1 = 0; i1 < xs[2]; ++i1)
        for (std::int64_t i2 = 0; i2 < xs[3]; ++i2)
          for (std::int64_t k0 = 0; k0 < c.k; ++k0)
            for (std::int64_t k1 = 0; k1 < c.k; ++k1)
              for (std::int64_t k2 = 0; k2 < c.k; ++k2) {
                const std::int64_t o0 = i0 * c.s - c.p + k0 * c.d, o1 = i1 * c.s - c.p + k1 * c.d,
                                   o2 = i2 * c.s - c.p + k2 * c.d;
                if (o0 < 0 || o1 < 0 || o2 < 0 || o0 >= ys[1] || o1 >= ys[2] || o2 >= ys[3]) continue;
                for (std::int64_t a = 0; a < xs[4]; ++a)
                  for (std::int64_t b = 0; b < yg; ++b) {
                    const std::int64_t grp = a / xg, yc = grp * yg + b;
                    // conv_transpose3d: w[yc, k, a % xg]; the input gradient: w[a, k, b].
                    const double wv = transposed_weight ? w[std::size_t(at(ws, yc, k0, k1, k2, a % xg))]
                                                        : w[std::size_t(at(ws, a, k0, k1, k2, b))];
                    y[std::size_t(at(ys, n, o0, o1, o2, yc))] += double(x[std::size_t(at(xs, n, i0, i1, i2, a))]) * wv;
                  }
              }
  return y;
}

std::vector<float> random_floats(const Shape5& s, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(std::size_t(s[0] * s[1] * s[2] * s[3] * s[4]));
  for (float& e : v) e = u(rng);
  return v;
}

int compare(const std::vector<float>& ours, const std::vector<double>& ref) {
  int wrong = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double a = ours[i], b = ref[i];
    if (std::isnan(a) != std::isnan(b) || (std::isinf(a) && !(std::isinf(b) && (a > 0) == (b > 0))) ||
        (std::isinf(b) && !std::isinf(a)) || (std::isfinite(b) && std::abs(a - b) > 1e-4 * (1 + std::abs(b))))
      ++wrong;
  }
  return wrong;
}

// The weight's corner taps NaN and +-inf (in the padding for border
// outputs); with `both`, an inf weight and an inf input that meet.
void poison(std::vector<float>& x, const Shape5& xs, std::vector<float>& w, const Shape5& ws, bool both) {
  const float inf = std::numeric_limits<float>::infinity();
  w[std::size_t(at(ws, 0, 0, 0, 0, 0))] = std::numeric_limits<float>::quiet_NaN();
  w[std::size_t(at(ws, ws[0] - 1, ws[1] - 1, ws[2] - 1, ws[3] - 1, ws[4] - 1))] = inf;
  w[std::size_t(at(ws, ws[0] / 2, 0, ws[2] - 1, 0, 0))] = -inf;
  if (!both) return;
  w[std::size_t(at(ws, 0, ws[1] / 2, ws[2] / 2, ws[3] / 2, 0))] = inf;
  x[std::size_t(at(xs, 0, xs[1] / 2, xs[2] / 2, xs[3] / 2, 0))] = inf;
}

void test_case(const Case& c, bool both) {
  // The forward conv3d: input (1, size^3, cin), weight (cout, k^3, cin/g), output y.
  const std::int64_t y = (c.size + 2 * c.p - c.d * (c.k - 1) - 1) / c.s + 1;
  const Shape5 x_shape{1, c.size, c.size, c.size, c.cin}, y_shape{1, y, y, y, c.cout};
  // conv3d_grad_input(gy, w): scatter gy through w back to x's shape.
  {
    const Shape5 ws{c.cout, c.k, c.k, c.k, c.cin / c.g};
    std::vector<float> gy = random_floats(y_shape, 1), w = random_floats(ws, 2);
    std::vector<float> gx(std::size_t(c.size * c.size * c.size * c.cin));
    poison(gy, y_shape, w, ws, both);
    ConvParams p;
    p.stride = {c.s, c.s, c.s};
    p.padding_lo = p.padding_hi = {c.p, c.p, c.p};
    p.dilation = {c.d, c.d, c.d};
    p.groups = c.g;
    conv3d_grad_input(ConstTensorView::contiguous(gy.data(), DType::float32, y_shape),
                      ConstTensorView::contiguous(w.data(), DType::float32, ws),
                      TensorView::contiguous(gx.data(), DType::float32, x_shape), p);
    const int wrong = compare(gx, scatter(gy, y_shape, w, ws, x_shape, c, false));
    if (wrong != 0)
      check::fail(__FILE__, __LINE__, "conv3d_grad_input s" + std::to_string(c.s) + " p" + std::to_string(c.p) + " g" +
                              std::to_string(c.g) + ": " + std::to_string(wrong) + " outputs differ");
  }
  // conv_transpose3d(x', w') with x' y-shaped (cout channels), w' (cin, k^3, cout/g).
  {
    const Shape5 ws{c.cin, c.k, c.k, c.k, c.cout / c.g};
    const std::int64_t t = (y - 1) * c.s - 2 * c.p + c.d * (c.k - 1) + c.op + 1;
    const Shape5 ts{1, t, t, t, c.cin};
    std::vector<float> x = random_floats(y_shape, 3), w = random_floats(ws, 4), out(std::size_t(t * t * t * c.cin));
    poison(x, y_shape, w, ws, both);
    ConvTransposeParams p;
    p.stride = {c.s, c.s, c.s};
    p.padding_lo = p.padding_hi = {c.p, c.p, c.p};
    p.dilation = {c.d, c.d, c.d};
    p.output_padding = {c.op, c.op, c.op};
    p.groups = c.g;
    conv_transpose3d(ConstTensorView::contiguous(x.data(), DType::float32, y_shape),
                     ConstTensorView::contiguous(w.data(), DType::float32, ws),
                     TensorView::contiguous(out.data(), DType::float32, ts), p);
    const int wrong = compare(out, scatter(x, y_shape, w, ws, ts, c, true));
    if (wrong != 0)
      check::fail(__FILE__, __LINE__, "conv_transpose3d s" + std::to_string(c.s) + " p" + std::to_string(c.p) + " g" +
                              std::to_string(c.g) + ": " + std::to_string(wrong) + " outputs differ");
  }
}

}  // namespace

int main() {
  const Case cases[] = {
      {4, 4, 6, 3, 1, 1, 1, 1, 0},   // one phase, padded
      {6, 8, 8, 3, 2, 1, 1, 1, 1},   // stride phases, output_padding
      {7, 16, 8, 3, 3, 2, 1, 1, 0},  // stride 3, C_in 16 (the GEMM paths)
      {6, 4, 6, 3, 1, 2, 2, 2, 0},   // dilation 2, groups 2
      {5, 1, 4, 3, 2, 1, 1, 1, 0},   // C_in 1
  };
  for (const Case& c : cases)
    for (bool both : {false, true}) test_case(c, both);
  return check::result("test_nan_placement");
}
