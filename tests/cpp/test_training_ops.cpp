// The C++ API of conv_transpose3d, conv_general and conv3d's gradients:
// shape helpers, messages naming the op, caller-allocated outputs with any
// strides, and the adjoint identity <conv3d(x, w), g> = <x, grad_input(g, w)>
// = <w, grad_weight(x, g)> in float64 as the oracle (conv3d is checked
// against a direct loop in test_conv3d_parity).
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

using IA = std::invalid_argument;

std::vector<double> random_vector(std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d;
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& e : v) e = d(rng);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

void test_shapes_and_messages() {
  ConvTransposeParams t;
  t.stride = {2, 2, 2};
  CHECK(conv_transpose3d_output_shape({1, 8, 28, 28, 128}, {64, 2, 2, 2, 128}, t) == Shape5({1, 16, 56, 56, 64}));
  t.padding_lo = t.padding_hi = {1, 1, 1};
  t.output_padding = {1, 0, 1};
  CHECK(conv_transpose3d_output_shape({2, 3, 4, 5, 6}, {4, 3, 3, 3, 6}, t) == Shape5({2, 6, 7, 10, 4}));
  t.output_padding = {2, 0, 0};
  CHECK_THROWS_MSG(IA, conv_transpose3d_output_shape({2, 3, 4, 5, 6}, {4, 3, 3, 3, 6}, t),
                   "[conv_transpose3d] Output padding must be smaller than either stride or dilation (as in PyTorch). "
                   "Got output padding (2,0,0), stride (2,2,2) and dilation (1,1,1).");
  ConvGeneralParams g;
  g.input_dilation = {2, 1, 3};
  g.padding_lo = {1, 0, 0};
  CHECK(conv_general_output_shape({1, 3, 3, 3, 2}, {5, 2, 2, 2, 2}, g) == Shape5({1, 5, 2, 6, 5}));
  ConvParams p;
  p.stride = {2, 2, 2};
  CHECK(conv3d_grad_input_output_shape({1, 2, 2, 2, 3}, {3, 3, 3, 3, 2}, {1, 5, 5, 6, 2}, p) ==
        Shape5({1, 5, 5, 6, 2}));
  CHECK_THROWS_MSG(IA, conv3d_grad_input_output_shape({1, 2, 2, 3, 3}, {3, 3, 3, 3, 2}, {1, 5, 5, 5, 2}, p),
                   "[conv3d_grad_input] Expected grad_output of shape (1,2,2,2,3) (the convolution's output shape) "
                   "but got (1,2,2,3,3).");
  CHECK_THROWS_HAS(IA, conv3d_grad_weight_output_shape({1, 5, 5, 5, 2}, {1, 2, 2, 2, 3}, {3, 3, 3, 3, 4}, p),
                   "[conv3d_grad_weight] Expect the input channels in the input and weight array to match");
  // The op checks the output dtype and refuses the GPU (no kernels yet).
  std::vector<float> x(2 * 27), gy(3 * 8), gw(3 * 27 * 2);
  const TensorView out = TensorView::contiguous(gw.data(), DType::float64, {3, 3, 3, 3, 2});
  CHECK_THROWS_MSG(IA, conv3d_grad_weight(ConstTensorView::contiguous(x.data(), DType::float32, {1, 3, 3, 3, 2}),
                                          ConstTensorView::contiguous(gy.data(), DType::float32, {1, 1, 1, 1, 3}),
                                          out, ConvParams{}),
                   "[conv3d_grad_weight] Expected the grad_weight dtype to be float32 (the promotion of float32 and "
                   "float32) but got float64.");
}

// conv3d's gradients satisfy the adjoint identity; grad_input is written
// through a strided (W-reversed, padded) view the caller owns.
void test_adjoint_identity() {
  const Shape5 xs{2, 5, 6, 4, 6}, ws{9, 3, 2, 3, 2};
  ConvParams p;
  p.stride = {2, 1, 3};
  p.padding_lo = {1, 0, 2};
  p.padding_hi = {0, 1, 1};
  p.dilation = {1, 2, 1};
  p.groups = 3;
  const Shape5 ys = conv3d_output_shape(xs, ws, p);
  const auto x = random_vector(numel(xs), 1), w = random_vector(numel(ws), 2), g = random_vector(numel(ys), 3);
  std::vector<double> y(std::size_t(numel(ys))), gw(std::size_t(numel(ws)));
  conv3d(ConstTensorView::contiguous(x.data(), DType::float64, xs),
         ConstTensorView::contiguous(w.data(), DType::float64, ws),
         TensorView::contiguous(y.data(), DType::float64, ys), p);
  // grad_input into every other element of a larger buffer, W reversed.
  std::vector<double> big(std::size_t(2 * numel(xs)), 0.0);
  TensorView gx_view = TensorView::contiguous(big.data(), DType::float64, xs);
  for (auto& s : gx_view.strides) s *= 2;
  gx_view.data = big.data() + (xs[3] - 1) * gx_view.strides[3];
  gx_view.strides[3] = -gx_view.strides[3];
  conv3d_grad_input(ConstTensorView::contiguous(g.data(), DType::float64, ys),
                    ConstTensorView::contiguous(w.data(), DType::float64, ws), gx_view, p);
  std::vector<double> gx(std::size_t(numel(xs)));
  std::size_t i = 0;
  for (std::int64_t a = 0; a < xs[0]; ++a)
    for (std::int64_t b = 0; b < xs[1]; ++b)
      for (std::int64_t c = 0; c < xs[2]; ++c)
        for (std::int64_t d = 0; d < xs[3]; ++d)
          for (std::int64_t e = 0; e < xs[4]; ++e)
            gx[i++] = static_cast<double*>(gx_view.data)[a * gx_view.strides[0] + b * gx_view.strides[1] +
                                                         c * gx_view.strides[2] + d * gx_view.strides[3] +
                                                         e * gx_view.strides[4]];
  conv3d_grad_weight(ConstTensorView::contiguous(x.data(), DType::float64, xs),
                     ConstTensorView::contiguous(g.data(), DType::float64, ys),
                     TensorView::contiguous(gw.data(), DType::float64, ws), p);
  const double lhs = dot(y, g);
  CHECK(std::abs(lhs - dot(x, gx)) < 1e-9 * (1 + std::abs(lhs)));
  CHECK(std::abs(lhs - dot(w, gw)) < 1e-9 * (1 + std::abs(lhs)));
  for (std::size_t k = 1; k < big.size(); k += 2) CHECK(big[k] == 0.0);  // nothing written between elements
}

// Stride 3 with a 2-tap kernel: every third output has no tap at all and
// must be written as zero (the output starts as NaN).
void test_tapless_phases_are_zero() {
  const Shape5 xs{1, 2, 2, 2, 3}, ws{2, 2, 2, 2, 3};
  ConvTransposeParams t;
  t.stride = {3, 3, 3};
  t.output_padding = {2, 2, 2};
  const Shape5 ys = conv_transpose3d_output_shape(xs, ws, t);
  CHECK(ys == Shape5({1, 7, 7, 7, 2}));  // (2 - 1) * 3 + (2 - 1) + 2 + 1
  const auto x = random_vector(numel(xs), 4), w = random_vector(numel(ws), 5);
  std::vector<double> y(std::size_t(numel(ys)), std::nan(""));
  conv_transpose3d(ConstTensorView::contiguous(x.data(), DType::float64, xs),
                   ConstTensorView::contiguous(w.data(), DType::float64, ws),
                   TensorView::contiguous(y.data(), DType::float64, ys), t);
  std::size_t i = 0;
  for (std::int64_t d = 0; d < 7; ++d)
    for (std::int64_t h = 0; h < 7; ++h)
      for (std::int64_t v = 0; v < 7; ++v)
        for (std::int64_t c = 0; c < 2; ++c, ++i) {
          CHECK(!std::isnan(y[i]));
          if (d % 3 == 2 || h % 3 == 2 || v % 3 == 2) CHECK(y[i] == 0.0);
        }
}

}  // namespace

int main() {
  test_tapless_phases_are_zero();
  test_shapes_and_messages();
  test_adjoint_identity();
  return check::result("test_training_ops");
}
