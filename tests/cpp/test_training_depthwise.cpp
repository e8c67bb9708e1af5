// The depthwise backward paths through the C++ API, on every kernel set this
// machine can run (on aarch64 under qemu: neon and generic): the planner
// (cpu::testing::plan_problem) picks dw-data for conv3d_grad_input and
// conv_transpose3d and dw-weight-grad for conv3d_grad_weight in every dtype;
// results against a float64 scatter loop written here from the definitions;
// weight-gradient bits equal for 1 and 3 threads. And, beside them, the
// weight gradient's GEMM (groups 1) with C_in 40 on every ISA: full tiles,
// lone vectors and single columns of each ISA's loops.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../../csrc/core/op_geometry.h"
#include "../../csrc/cpu/conv3d_plan.h"
#include "conv_reference.h"
#include "volconv/cpu.h"

using namespace volconv;
using namespace conv_reference;

namespace {

struct Case {
  const char* name;
  Shape5 x;  // (N, D, H, W, C): depthwise, groups = C
  Int3 k, s, lo, hi, d;
};

const Case kCases[] = {
    {"s1p1_c17", {2, 3, 4, 9, 17}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}},
    {"s2_c3", {1, 5, 4, 8, 3}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {0, 1, 1}, {1, 1, 1}},
    {"s3_asym_dil_c1", {2, 6, 5, 10, 1}, {2, 3, 3}, {3, 1, 3}, {0, 1, 2}, {2, 0, 1}, {1, 2, 2}},
    {"k5_c20", {1, 2, 3, 13, 20}, {1, 2, 5}, {1, 2, 2}, {0, 1, 2}, {1, 0, 3}, {1, 1, 1}},
};

double tolerance(DType t) {
  switch (t) {
    case DType::float64: return 1e-12;
    case DType::float32: return 2e-6;
    case DType::float16: return 1.5e-3;
    case DType::bfloat16: return 8e-3;
  }
  return 0;
}

Buffer random_buffer(DType t, std::int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist;
  Buffer b(t, std::size_t(n));
  for (std::int64_t i = 0; i < n; ++i) b.set(i, dist(rng));
  return b;
}

ConvParams params_of(const Case& c) {
  ConvParams p;
  p.stride = c.s;
  p.padding_lo = c.lo;
  p.padding_hi = c.hi;
  p.dilation = c.d;
  p.groups = c.x[4];
  return p;
}

// Checks got (dtype t) against ref within tolerance(t) * scale per element.
bool close(Buffer& got, const std::vector<double>& ref, const std::vector<double>& scale, DType t,
           const std::string& what) {
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(got.get(std::int64_t(i)) - ref[i]);
    if (!(err <= tolerance(t) * scale[i] + 1e-30 + (t == DType::float16 ? 6e-8 : 0.0))) {
      std::printf("  %s: element %zu got %g, reference %g\n", what.c_str(), i, got.get(std::int64_t(i)), ref[i]);
      return false;
    }
  }
  return true;
}

void run_case(const Case& c, DType t) {
  const ConvParams p = params_of(c);
  const std::int64_t C = c.x[4];
  const Shape5 ws{C, c.k[0], c.k[1], c.k[2], 1};
  const Shape5 ys = conv3d_output_shape(c.x, ws, p);
  Buffer x = random_buffer(t, numel(c.x), 1), w = random_buffer(t, numel(ws), 2), gy = random_buffer(t, numel(ys), 3);
  const auto view = [&](Buffer& b, const Shape5& s) { return ConstTensorView::contiguous(b.at(0), t, s); };
  const std::string tag = std::string(c.name) + " " + dtype_name(t) + " on " + cpu::active_isa();

  // The planner's choice, asked as the ops lower the call.
  const auto gi_geom = detail::lower_conv3d_grad_input("conv3d_grad_input", ys, ws, c.x, p).geometry;
  const auto gw_geom = detail::lower_conv3d_grad_weight("conv3d_grad_weight", c.x, ys, ws, p).geometry;
  CHECK(cpu::testing::plan_problem(detail::ConvOp::data, gi_geom, view(gy, ys), view(w, ws)).path ==
        cpu::ProblemPath::dw_data);
  CHECK(cpu::testing::plan_problem(detail::ConvOp::weight_grad, gw_geom, view(x, c.x), view(gy, ys)).path ==
        cpu::ProblemPath::dw_weight_grad);

  // float64 references: grad_input and conv_transpose3d scatter dy * w to
  // the input position each tap read; grad_weight sums dy * x per tap.
  std::vector<double> gi_ref(std::size_t(numel(c.x))), gi_scale(gi_ref.size());
  std::vector<double> gw_ref(std::size_t(numel(ws))), gw_scale(gw_ref.size());
  const Shape5 xst = contiguous_strides(c.x), yst = contiguous_strides(ys), wst = contiguous_strides(ws);
  for_each_index(ys, [&](const Shape5& o) {
    const double g = gy.get(o[0] * yst[0] + o[1] * yst[1] + o[2] * yst[2] + o[3] * yst[3] + o[4]);
    for (std::int64_t a = 0; a < c.k[0]; ++a)
      for (std::int64_t b = 0; b < c.k[1]; ++b)
        for (std::int64_t e = 0; e < c.k[2]; ++e) {
          const std::int64_t i0 = o[1] * c.s[0] - c.lo[0] + a * c.d[0], i1 = o[2] * c.s[1] - c.lo[1] + b * c.d[1];
          const std::int64_t i2 = o[3] * c.s[2] - c.lo[2] + e * c.d[2];
          if (i0 < 0 || i0 >= c.x[1] || i1 < 0 || i1 >= c.x[2] || i2 < 0 || i2 >= c.x[3]) continue;
          const std::size_t xi = std::size_t(o[0] * xst[0] + i0 * xst[1] + i1 * xst[2] + i2 * xst[3] + o[4]);
          const std::size_t wi = std::size_t(o[4] * wst[0] + a * wst[1] + b * wst[2] + e * wst[3]);
          const double wv = w.get(std::int64_t(wi)), xv = x.get(std::int64_t(xi));
          gi_ref[xi] += g * wv;
          gi_scale[xi] += std::fabs(g * wv);
          gw_ref[wi] += g * xv;
          gw_scale[wi] += std::fabs(g * xv);
        }
  });

  Buffer gi(t, std::size_t(numel(c.x))), tr(t, std::size_t(numel(c.x))), gw(t, std::size_t(numel(ws)));
  conv3d_grad_input(view(gy, ys), view(w, ws), TensorView::contiguous(gi.at(0), t, c.x), p);
  CHECK(close(gi, gi_ref, gi_scale, t, tag + " grad_input"));
  // conv_transpose3d of dy with the same weight is the same scatter; the
  // output_padding gives x's size back.
  ConvTransposeParams tp;
  tp.stride = c.s;
  tp.padding_lo = c.lo;
  tp.padding_hi = c.hi;
  tp.dilation = c.d;
  tp.groups = C;
  for (int i = 0; i < 3; ++i)
    tp.output_padding[i] = c.x[i + 1] - ((ys[i + 1] - 1) * c.s[i] - c.lo[i] - c.hi[i] + c.d[i] * (c.k[i] - 1) + 1);
  CHECK(conv_transpose3d_output_shape(ys, ws, tp) == c.x);
  conv_transpose3d(view(gy, ys), view(w, ws), TensorView::contiguous(tr.at(0), t, c.x), tp);
  CHECK(close(tr, gi_ref, gi_scale, t, tag + " conv_transpose3d"));

  cpu::set_num_threads(1);
  conv3d_grad_weight(view(x, c.x), view(gy, ys), TensorView::contiguous(gw.at(0), t, ws), p);
  CHECK(close(gw, gw_ref, gw_scale, t, tag + " grad_weight"));
  Buffer gw3(t, std::size_t(numel(ws)));
  cpu::set_num_threads(3);
  conv3d_grad_weight(view(x, c.x), view(gy, ys), TensorView::contiguous(gw3.at(0), t, ws), p);
  cpu::set_num_threads(0);
  CHECK(gw.bytes == gw3.bytes);
}

void gemm_weight_grad_case() {
  const Shape5 xs{1, 3, 3, 5, 40}, ws{7, 2, 2, 2, 40};
  const ConvParams p;
  const Shape5 ys = conv3d_output_shape(xs, ws, p);
  const DType t = DType::float32;
  Buffer x = random_buffer(t, numel(xs), 4), gy = random_buffer(t, numel(ys), 5), gw(t, std::size_t(numel(ws)));
  conv3d_grad_weight(ConstTensorView::contiguous(x.at(0), t, xs), ConstTensorView::contiguous(gy.at(0), t, ys),
                     TensorView::contiguous(gw.at(0), t, ws), p);
  std::vector<double> ref(std::size_t(numel(ws))), scale(ref.size());
  const Shape5 xst = contiguous_strides(xs), yst = contiguous_strides(ys), wst = contiguous_strides(ws);
  for_each_index(ws, [&](const Shape5& k) {
    double sum = 0, abs_sum = 0;
    for_each_index({ys[0], ys[1], ys[2], ys[3], 1}, [&](const Shape5& o) {
      const double a = gy.get(o[0] * yst[0] + o[1] * yst[1] + o[2] * yst[2] + o[3] * yst[3] + k[0]);
      const double b = x.get(o[0] * xst[0] + (o[1] + k[1]) * xst[1] + (o[2] + k[2]) * xst[2] +
                             (o[3] + k[3]) * xst[3] + k[4]);
      sum += a * b;
      abs_sum += std::fabs(a * b);
    });
    const std::size_t i = std::size_t(k[0] * wst[0] + k[1] * wst[1] + k[2] * wst[2] + k[3] * wst[3] + k[4]);
    ref[i] = sum;
    scale[i] = abs_sum;
  });
  CHECK(close(gw, ref, scale, t, std::string("gemm weight gradient C_in 40 on ") + cpu::active_isa()));
}

}  // namespace

int main() {
  for (const std::string& isa : cpu::supported_isas()) {
    cpu::force_isa(isa);
    for (const Case& c : kCases)
      for (DType t : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) run_case(c, t);
    gemm_weight_grad_case();
    std::printf("depthwise backward on %s: %zu cases x 4 dtypes\n", isa.c_str(), sizeof(kCases) / sizeof(kCases[0]));
  }
  cpu::force_isa("");
  return check::result("test_training_depthwise");
}
