// The CUDA route (csrc/cuda/cudnn_plan.h), without a GPU: which problems go
// to the depthwise kernels, which to cuDNN and which are refused; and that
// cuDNN's convolution with its symmetric padding, cropped or fed a
// zero-padded gradient as the route says, computes exactly our problem.
// Each axis is checked on its own with integer 1-D convolutions written
// from the definitions (conv_problem.h for ours, cuDNN's documented forward,
// backward-data and backward-filter sums for theirs).
#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/cuda/cudnn_plan.h"
#include "check.h"

using namespace volconv;
using cuda_plan::CudaRoute;
using cuda_plan::NonfiniteFix;
using detail::ConvOp;
using detail::ConvProblemGeometry;
using detail::WeightLayout;
using Vec = std::vector<std::int64_t>;

namespace {

// One axis of a problem, as conv_problem.h defines it.
struct Axis {
  std::int64_t in, kernel, out, stride, lo, kdil, idil;
  bool flip;
};

std::int64_t dilated(const Vec& x, std::int64_t j, std::int64_t idil) {
  if (j < 0 || j % idil != 0 || j / idil >= std::int64_t(x.size())) return 0;
  return x[std::size_t(j / idil)];
}

// out[o] = sum_k in_dilated[o*stride - lo + k*kdil] * w[flip ? K-1-k : k]
Vec ours_data(const Axis& a, const Vec& x, const Vec& w) {
  Vec y(std::size_t(a.out), 0);
  for (std::int64_t o = 0; o < a.out; ++o)
    for (std::int64_t k = 0; k < a.kernel; ++k)
      y[std::size_t(o)] += dilated(x, o * a.stride - a.lo + k * a.kdil, a.idil) *
                           w[std::size_t(a.flip ? a.kernel - 1 - k : k)];
  return y;
}

// The gradient of sum_o out[o] * dy[o] with respect to w:
// w[flip ? K-1-k : k] = sum_o in_dilated[o*stride - lo + k*kdil] * dy[o]
Vec ours_wgrad(const Axis& a, const Vec& x, const Vec& dy) {
  Vec dw(std::size_t(a.kernel), 0);
  for (std::int64_t o = 0; o < a.out; ++o)
    for (std::int64_t k = 0; k < a.kernel; ++k)
      dw[std::size_t(a.flip ? a.kernel - 1 - k : k)] +=
          dilated(x, o * a.stride - a.lo + k * a.kdil, a.idil) * dy[std::size_t(o)];
  return dw;
}

// cuDNN's forward along one axis of `c`: y[o] = sum_k x[o*s - pad + k*d] * w[k].
Vec cudnn_forward(const cuda_plan::CudnnConv& c, int i, const Vec& x, const Vec& w) {
  Vec y(std::size_t(c.out_full[i]), 0);
  for (std::int64_t o = 0; o < c.out_full[i]; ++o)
    for (std::int64_t k = 0; k < c.kernel[i]; ++k)
      y[std::size_t(o)] += dilated(x, o * c.stride[i] - c.pad[i] + k * c.dilation[i], 1) * w[std::size_t(k)];
  return y;
}

// dy of our output size placed at the route's offset in a zero y of cuDNN's size.
Vec widen(const cuda_plan::CudnnConv& c, int i, const Vec& dy) {
  Vec full(std::size_t(c.out_full[i]), 0);
  for (std::size_t o = 0; o < dy.size(); ++o) full[std::size_t(c.offset[i]) + o] = dy[o];
  return full;
}

// cuDNN's backward data: dx[j] = sum over (o, k) with o*s - pad + k*d == j of dy[o] * w[k].
Vec cudnn_backward_data(const cuda_plan::CudnnConv& c, int i, const Vec& dy_full, const Vec& w) {
  Vec dx(std::size_t(c.in[i]), 0);
  for (std::int64_t o = 0; o < c.out_full[i]; ++o)
    for (std::int64_t k = 0; k < c.kernel[i]; ++k) {
      const std::int64_t j = o * c.stride[i] - c.pad[i] + k * c.dilation[i];
      if (j >= 0 && j < c.in[i]) dx[std::size_t(j)] += dy_full[std::size_t(o)] * w[std::size_t(k)];
    }
  return dx;
}

// cuDNN's backward filter: dw[k] = sum_o x[o*s - pad + k*d] * dy[o].
Vec cudnn_backward_filter(const cuda_plan::CudnnConv& c, int i, const Vec& x, const Vec& dy_full) {
  Vec dw(std::size_t(c.kernel[i]), 0);
  for (std::int64_t o = 0; o < c.out_full[i]; ++o)
    for (std::int64_t k = 0; k < c.kernel[i]; ++k)
      dw[std::size_t(k)] += dilated(x, o * c.stride[i] - c.pad[i] + k * c.dilation[i], 1) * dy_full[std::size_t(o)];
  return dw;
}

Vec random_vec(std::mt19937& rng, std::int64_t n) {
  Vec v(static_cast<std::size_t>(n));
  for (auto& e : v) e = std::int64_t(rng() % 19) - 9;
  return v;
}

// A random forward conv axis: (in, kernel, stride, dilation, lo, hi) with out >= 1.
Axis random_forward(std::mt19937& rng) {
  for (;;) {
    Axis a{};
    a.in = 1 + rng() % 9;
    a.kernel = 1 + rng() % 4;
    a.stride = 1 + rng() % 3;
    a.kdil = 1 + rng() % 3;
    a.lo = rng() % 5;
    const std::int64_t hi = rng() % 5;
    a.idil = 1;
    a.flip = false;
    const std::int64_t span = a.in + a.lo + hi - a.kdil * (a.kernel - 1) - 1;
    if (span < 0) continue;
    a.out = span / a.stride + 1;
    return a;
  }
}

ConvProblemGeometry geometry_of(const Axis (&axes)[3], std::int64_t cin, std::int64_t cout, std::int64_t groups) {
  ConvProblemGeometry g;
  g.batch = 2;
  g.in_channels = cin;
  g.out_channels = cout;
  g.groups = groups;
  for (int i = 0; i < 3; ++i) {
    g.in[i] = axes[i].in;
    g.kernel[i] = axes[i].kernel;
    g.out[i] = axes[i].out;
    g.stride[i] = axes[i].stride;
    g.padding_lo[i] = axes[i].lo;
    g.kernel_dilation[i] = axes[i].kdil;
    g.input_dilation[i] = axes[i].idil;
  }
  g.flip = axes[0].flip;
  return g;
}

bool all_one_test(const Int3& v) { return v[0] == 1 && v[1] == 1 && v[2] == 1; }

void check_equal(const Vec& a, const Vec& b, const std::string& what) {
  if (a != b) check::fail(__FILE__, __LINE__, what);
}

// conv3d's forward and weight gradient: the forward problem itself.
void check_forward_and_wgrad(std::mt19937& rng, int& expressed, int& refused) {
  Axis f[3];
  for (auto& a : f) a = random_forward(rng);
  const ConvProblemGeometry g = geometry_of(f, 4, 6, 2);
  for (ConvOp op : {ConvOp::data, ConvOp::weight_grad}) {
    const auto r = cuda_plan::choose_route(op, g, WeightLayout::out_k_in, false);
    if (r.route == CudaRoute::refused) {
      // Only an offset that is not a whole number of strides is refused.
      CHECK(r.refused.find("cannot be expressed") != std::string::npos);
      ++refused;
      continue;
    }
    ++expressed;
    CHECK(r.route == (op == ConvOp::data ? CudaRoute::cudnn_forward : CudaRoute::cudnn_backward_filter));
    for (int i = 0; i < 3; ++i) {
      const Vec x = random_vec(rng, f[i].in), w = random_vec(rng, f[i].kernel), dy = random_vec(rng, f[i].out);
      const std::string what = std::string(op == ConvOp::data ? "forward" : "wgrad") + " axis " + std::to_string(i);
      if (r.conv.offset[i] + f[i].out > r.conv.out_full[i]) {  // cuDNN's output would not hold ours
        check::fail(__FILE__, __LINE__, what + ": window past cuDNN's output");
        continue;
      }
      if (op == ConvOp::data) {
        const Vec full = cudnn_forward(r.conv, i, x, w);
        check_equal(Vec(full.begin() + r.conv.offset[i], full.begin() + r.conv.offset[i] + f[i].out),
                    ours_data(f[i], x, w), what);
      } else {
        check_equal(cudnn_backward_filter(r.conv, i, x, widen(r.conv, i, dy)), ours_wgrad(f[i], x, dy), what);
      }
    }
  }
}

// conv3d's input gradient as it is lowered (op_geometry.cpp): a data
// problem over grad_output, flipped, input-dilated by the stride.
void check_grad_input(std::mt19937& rng, int& expressed, int& refused) {
  Axis f[3], g3[3];
  for (int i = 0; i < 3; ++i) {
    f[i] = random_forward(rng);
    g3[i] = {f[i].out, f[i].kernel, f[i].in, 1, f[i].kdil * (f[i].kernel - 1) - f[i].lo, f[i].kdil, f[i].stride,
             true};
  }
  const ConvProblemGeometry g = geometry_of(g3, 6, 4, 2);
  const auto r = cuda_plan::choose_route(ConvOp::data, g, WeightLayout::in_k_out, false);
  if (r.route == CudaRoute::refused) {
    CHECK(r.refused.find("cannot be expressed") != std::string::npos);
    ++refused;
    return;
  }
  ++expressed;
  CHECK(r.route == CudaRoute::cudnn_backward_data);
  CHECK_EQ(r.conv.in_channels, std::int64_t(4));
  CHECK_EQ(r.conv.out_channels, std::int64_t(6));
  for (int i = 0; i < 3; ++i) {
    const Vec dy = random_vec(rng, g3[i].in), w = random_vec(rng, g3[i].kernel);
    if (r.conv.offset[i] + g3[i].in > r.conv.out_full[i]) {
      check::fail(__FILE__, __LINE__, "grad_input: window past cuDNN's output");
      continue;
    }
    check_equal(cudnn_backward_data(r.conv, i, widen(r.conv, i, dy), w), ours_data(g3[i], dy, w),
                "grad_input axis " + std::to_string(i));
  }
}

Vec reversed(Vec v, bool reverse) {
  if (reverse) std::reverse(v.begin(), v.end());
  return v;
}

// Any problem along one axis of `r`'s cuDNN convolution, as the route maps
// it: the stored taps reversed when the filter map says so, a transposed
// conv's weight gradient with the operands swapped. `x` is the problem's
// input; `w_or_dy` its weight (data) or output gradient (weight gradient).
Vec through_cudnn(const cuda_plan::CudaRouteChoice& r, int i, std::int64_t out, const Vec& x, const Vec& w_or_dy) {
  const cuda_plan::CudnnConv& c = r.conv;
  const bool rev = r.filter.reverse_taps;
  switch (r.route) {
    case CudaRoute::cudnn_forward: {
      const Vec full = cudnn_forward(c, i, x, reversed(w_or_dy, rev));
      return Vec(full.begin() + c.offset[i], full.begin() + c.offset[i] + out);
    }
    case CudaRoute::cudnn_backward_data:
      return cudnn_backward_data(c, i, widen(c, i, x), reversed(w_or_dy, rev));
    case CudaRoute::cudnn_backward_filter:
      return reversed(r.swap_operands ? cudnn_backward_filter(c, i, w_or_dy, widen(c, i, x))
                                      : cudnn_backward_filter(c, i, x, widen(c, i, w_or_dy)),
                      rev);
    default:
      return {};
  }
}

// A random general problem (conv_general's model; conv_transpose3d and the
// input gradients are instances): input dilation and stride, one of them 1
// mostly, padding either side of zero (negative low padding: a crop),
// flipped or not. Both ops, each weight layout a data problem can have.
void check_general(std::mt19937& rng, int (&expressed)[3], int& refused) {
  Axis f[3];
  const int mode = int(rng() % 4);  // 0, 1: input dilation only; 2: stride only; 3: both
  const bool flip = rng() % 2 == 0;
  for (auto& a : f) {
    for (;;) {
      a.in = 1 + rng() % 8;
      a.kernel = 1 + rng() % 4;
      a.kdil = 1 + rng() % 3;
      a.idil = mode == 2 ? 1 : 1 + rng() % 3;
      a.stride = mode < 2 ? 1 : 1 + rng() % 3;
      a.lo = std::int64_t(rng() % 8) - 3;
      const std::int64_t hi = std::int64_t(rng() % 8) - 3;
      a.flip = flip;
      const std::int64_t span = (a.in - 1) * a.idil + 1 + a.lo + hi - a.kdil * (a.kernel - 1) - 1;
      if (span < 0) continue;
      a.out = span / a.stride + 1;
      break;
    }
  }
  const ConvProblemGeometry g = geometry_of(f, 6, 4, 2);
  for (ConvOp op : {ConvOp::data, ConvOp::weight_grad})
    for (WeightLayout layout : {WeightLayout::out_k_in, WeightLayout::in_k_out}) {
      if (op == ConvOp::weight_grad && layout == WeightLayout::in_k_out) continue;  // results are stored out_k_in
      const auto r = cuda_plan::choose_route(op, g, layout, false);
      if (r.route == CudaRoute::refused) {
        CHECK(r.refused.find("cannot be expressed") != std::string::npos ||
              r.refused.find("cannot crop") != std::string::npos ||
              r.refused.find("only at stride 1") != std::string::npos);
        ++refused;
        continue;
      }
      CHECK(mode != 3 || all_one_test(g.stride) || all_one_test(g.input_dilation));
      ++expressed[int(r.route) - 1];
      // Input dilation needs the transposed form. The channels: swapped
      // within groups exactly when cuDNN's filter is the other conv's
      // (transposed form) or an in_k_out weight is read forward.
      const bool transposed = r.route == CudaRoute::cudnn_backward_data || r.swap_operands;
      CHECK(transposed || all_one_test(g.input_dilation));
      CHECK_EQ(r.filter.swap_channels, transposed ? (op == ConvOp::weight_grad || layout == WeightLayout::out_k_in)
                                                  : (op == ConvOp::data && layout == WeightLayout::in_k_out));
      CHECK_EQ(r.conv.in_channels, transposed ? std::int64_t(4) : std::int64_t(6));
      for (int i = 0; i < 3; ++i) {
        const Vec x = random_vec(rng, f[i].in);
        const Vec second = random_vec(rng, op == ConvOp::data ? f[i].kernel : f[i].out);
        const std::int64_t window = transposed ? f[i].in : f[i].out;
        if (r.conv.offset[i] + window > r.conv.out_full[i]) {
          check::fail(__FILE__, __LINE__, "general: window past cuDNN's output");
          continue;
        }
        const Vec ours = op == ConvOp::data ? ours_data(f[i], x, second) : ours_wgrad(f[i], x, second);
        check_equal(through_cudnn(r, i, f[i].out, x, second), ours,
                    "general mode " + std::to_string(mode) + " route " + std::to_string(int(r.route)) + " axis " +
                        std::to_string(i));
      }
    }
}

// torch's conv_transpose3d (symmetric padding, output_padding below
// max(stride, dilation)) as lowered (op_geometry.cpp) is always expressed.
void check_torch_transposes() {
  for (std::int64_t s = 1; s <= 3; ++s)
    for (std::int64_t d = 1; d <= 2; ++d)
      for (std::int64_t k = 1; k <= 4; ++k)
        for (std::int64_t p = 0; p <= 3; ++p)
          for (std::int64_t op = 0; op < std::max(s, d); ++op) {
            const std::int64_t in = 5, reach = d * (k - 1);
            const std::int64_t out = (in - 1) * s - 2 * p + reach + op + 1;
            if (out < 1) continue;
            const Axis a{in, k, out, 1, reach - p, d, s, true};
            const Axis axes[3] = {a, a, a};
            const ConvProblemGeometry g = geometry_of(axes, 8, 6, 2);
            const auto fwd = cuda_plan::choose_route(ConvOp::data, g, WeightLayout::out_k_in, false);
            const auto wgrad = cuda_plan::choose_route(ConvOp::weight_grad, g, WeightLayout::out_k_in, false);
            // At stride 1 there is no input dilation: the forward form (taps
            // reversed) unless a padding past the reach crops, then the other.
            const bool forward = s == 1 && p <= reach;
            const CudaRoute data_route = forward ? CudaRoute::cudnn_forward : CudaRoute::cudnn_backward_data;
            if (fwd.route != data_route || wgrad.route != CudaRoute::cudnn_backward_filter) {
              check::fail(__FILE__, __LINE__,
                          "torch transpose refused: s " + std::to_string(s) + " d " + std::to_string(d) + " k " +
                              std::to_string(k) + " p " + std::to_string(p) + " op " + std::to_string(op) + ": " +
                              fwd.refused + wgrad.refused);
              continue;
            }
            // A transposed conv scatters (the skip rule): its weight gradient
            // in the forward form gets its padding taps recomputed, the
            // swapped form no fix-up (the padding ones read no input
            // dilation); its data problem gets the weight one.
            CHECK(cuda_plan::nonfinite_fix(wgrad, detail::ZeroTaps::skipped) ==
                  (wgrad.swap_operands ? NonfiniteFix::none : NonfiniteFix::padding_taps_recomputed));
            CHECK(cuda_plan::nonfinite_fix(fwd, detail::ZeroTaps::skipped) == NonfiniteFix::weight_channels);
            if (wgrad.swap_operands)
              CHECK(cuda_plan::nonfinite_fix(wgrad, detail::ZeroTaps::multiplied) == NonfiniteFix::none);
            if (forward) {
              CHECK(!fwd.filter.swap_channels && fwd.filter.reverse_taps);
              CHECK(!wgrad.filter.swap_channels && wgrad.filter.reverse_taps && !wgrad.swap_operands);
            } else {
              CHECK(fwd.filter.swap_channels && !fwd.filter.reverse_taps && !fwd.swap_operands);
              CHECK(wgrad.filter.swap_channels && !wgrad.filter.reverse_taps && wgrad.swap_operands);
              CHECK_EQ(fwd.conv.pad[0], p);
              CHECK_EQ(fwd.conv.stride[0], s);
            }
            // Its input gradient: the forward conv with the weight swapped.
            ConvProblemGeometry gi;
            gi.batch = 2;
            gi.in_channels = 6;
            gi.out_channels = 8;
            gi.groups = 2;
            for (int i = 0; i < 3; ++i) {
              gi.in[i] = out;
              gi.out[i] = in;
              gi.kernel[i] = k;
              gi.stride[i] = s;
              gi.padding_lo[i] = p;
              gi.kernel_dilation[i] = d;
            }
            const auto gin = cuda_plan::choose_route(ConvOp::data, gi, WeightLayout::in_k_out, false);
            CHECK(gin.route == CudaRoute::cudnn_forward && gin.filter.swap_channels && !gin.filter.reverse_taps);
          }
}

}  // namespace

int main() {
  std::mt19937 rng(20);
  int expressed = 0, refused = 0;
  for (int t = 0; t < 400; ++t) {
    check_forward_and_wgrad(rng, expressed, refused);
    check_grad_input(rng, expressed, refused);
  }
  // Most random problems are expressed; the sweep reaches both outcomes.
  CHECK(expressed > 600);
  CHECK(refused > 0);
  int general[3] = {0, 0, 0}, general_refused = 0;
  for (int t = 0; t < 600; ++t) check_general(rng, general, general_refused);
  // Every cuDNN route is reached, and some problems are refused.
  if (!(general[0] > 50 && general[1] > 50 && general[2] > 50))
    check::fail(__FILE__, __LINE__,
                "routes reached: " + std::to_string(general[0]) + ", " + std::to_string(general[1]) + ", " +
                    std::to_string(general[2]));
  CHECK(general_refused > 0);
  check_torch_transposes();

  // Depthwise problems stay on the kernels; dense ones go to cuDNN uncropped
  // when the padding is symmetric.
  Axis a{8, 3, 8, 1, 1, 1, 1, false};
  const Axis same[3] = {a, a, a};
  const ConvProblemGeometry dw = geometry_of(same, 8, 8, 8);
  CHECK(cuda_plan::choose_route(ConvOp::data, dw, WeightLayout::out_k_in, false).route == CudaRoute::depthwise);
  CHECK(cuda_plan::choose_route(ConvOp::weight_grad, dw, WeightLayout::out_k_in, false).route ==
        CudaRoute::depthwise);
  const ConvProblemGeometry dense = geometry_of(same, 8, 16, 1);
  const auto fwd = cuda_plan::choose_route(ConvOp::data, dense, WeightLayout::out_k_in, false);
  CHECK(fwd.route == CudaRoute::cudnn_forward);
  CHECK(!fwd.conv.cropped());
  // Deterministic engines: always for a weight gradient, for the others only
  // when asked; and a plan made one way is never looked up for the other.
  CHECK(cuda_plan::deterministic_engines(CudaRoute::cudnn_backward_filter, false));
  CHECK(!cuda_plan::deterministic_engines(CudaRoute::cudnn_forward, false));
  CHECK(!cuda_plan::deterministic_engines(CudaRoute::cudnn_backward_data, false));
  CHECK(cuda_plan::deterministic_engines(CudaRoute::cudnn_forward, true));
  CHECK(cuda_plan::deterministic_engines(CudaRoute::cudnn_backward_data, true));
  using Key = std::array<std::int64_t, cuda_plan::kConvKeyFields>;
  const Key loose = cuda_plan::conv_key<cuda_plan::kConvKeyFields>(fwd.route, DType::float32, 0, fwd.conv, false);
  CHECK(loose != cuda_plan::conv_key<cuda_plan::kConvKeyFields>(fwd.route, DType::float32, 0, fwd.conv, true));
  CHECK(loose == cuda_plan::conv_key<cuda_plan::kConvKeyFields>(fwd.route, DType::float32, 0, fwd.conv, false));
  CHECK_EQ(fwd.conv.pad[1], std::int64_t(1));
  // The fix-ups after cuDNN (dense_nonfinite.h): conv3d's weight gradient
  // (the multiply rule) gets the padding one, its data problems the weight
  // one; the depthwise kernels follow the rule themselves.
  const auto dense_wgrad = cuda_plan::choose_route(ConvOp::weight_grad, dense, WeightLayout::out_k_in, false);
  CHECK(dense_wgrad.route == CudaRoute::cudnn_backward_filter && !dense_wgrad.swap_operands);
  CHECK(cuda_plan::nonfinite_fix(dense_wgrad, detail::ZeroTaps::multiplied) == NonfiniteFix::padding_taps);
  // conv_general's (the skip rule): recomputed, not set to NaN.
  CHECK(cuda_plan::nonfinite_fix(dense_wgrad, detail::ZeroTaps::skipped) == NonfiniteFix::padding_taps_recomputed);
  CHECK(cuda_plan::nonfinite_fix(fwd, detail::ZeroTaps::multiplied) == NonfiniteFix::weight_channels);
  const auto dense_gin = cuda_plan::choose_route(ConvOp::data, dense, WeightLayout::in_k_out, false);
  CHECK(cuda_plan::nonfinite_fix(dense_gin, detail::ZeroTaps::multiplied) == NonfiniteFix::weight_channels);
  for (ConvOp op : {ConvOp::data, ConvOp::weight_grad})
    for (detail::ZeroTaps z : {detail::ZeroTaps::multiplied, detail::ZeroTaps::skipped})
      CHECK(cuda_plan::nonfinite_fix(cuda_plan::choose_route(op, dw, WeightLayout::out_k_in, false), z) ==
            NonfiniteFix::none);
  // Padding modes other than zeros, and the input gradient's padding fold: refused.
  ConvProblemGeometry reflect = dense;
  reflect.padding_mode[2] = PaddingMode::reflect;
  CHECK(cuda_plan::choose_route(ConvOp::data, reflect, WeightLayout::out_k_in, false).refused.find(
            "pads with zeros only") != std::string::npos);
  CHECK(cuda_plan::choose_route(ConvOp::data, dense, WeightLayout::in_k_out, true).route == CudaRoute::refused);
  // Input dilation together with a stride: refused by name.
  Axis t{4, 3, 4, 2, 2, 1, 2, true};
  const Axis tr[3] = {t, t, t};
  const auto both = cuda_plan::choose_route(ConvOp::data, geometry_of(tr, 8, 16, 1), WeightLayout::out_k_in, false);
  CHECK(both.route == CudaRoute::refused);
  CHECK(both.refused.find("only at stride 1, but got stride (2, 2, 2) with input dilation (2, 2, 2)") !=
        std::string::npos);
  // A tensor of 2^31 elements does not fit cuDNN's ints.
  ConvProblemGeometry huge = dense;
  huge.batch = (std::int64_t(1) << 31) / (8 * 8 * 8 * 8) + 1;
  const auto too_big = cuda_plan::choose_route(ConvOp::data, huge, WeightLayout::out_k_in, false);
  CHECK(too_big.refused.find("2^31") != std::string::npos);
  CHECK(cuda_plan::nonfinite_fix(too_big, detail::ZeroTaps::multiplied) == NonfiniteFix::none);
  return check::result("test_cuda_route");
}
