// Padding modes (reflect, replicate, circular, per axis, asymmetric) through
// the C++ API on every CPU path of every kernel set this machine runs (on
// aarch64 under qemu: neon and generic), against "pad, then convolve"
// written here: the padded input is built explicitly (the index rules
// written from torch.nn.functional.pad's definitions, not the library's),
// then convolved with the zero-padding loop of conv_reference.h. Then both
// gradients, against loops over the same padded input, and the adjoint
// identities <conv(x), g> = <x, grad_input(g)> = <w, grad_weight(x, g)>.
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../csrc/cpu/conv3d_plan.h"
#include "conv_reference.h"
#include "volconv/cpu.h"

using namespace volconv;
using namespace conv_reference;

namespace {

using IA = std::invalid_argument;
const Stream cpu_stream{0, Device{DeviceType::cpu, 0}};

// The source of padded coordinate c on an axis of n: reflect mirrors about
// the edge element (period 2(n - 1)), replicate clamps, circular wraps.
std::int64_t source_of(PaddingMode m, std::int64_t n, std::int64_t c) {
  if (c >= 0 && c < n) return c;
  switch (m) {
    case PaddingMode::zeros: return -1;
    case PaddingMode::replicate: return c < 0 ? 0 : n - 1;
    case PaddingMode::circular: return ((c % n) + n) % n;
    case PaddingMode::reflect: {
      const std::int64_t period = 2 * (n - 1), r = ((c % period) + period) % period;
      return r < n ? r : period - r;
    }
  }
  return -1;
}

struct Case {
  const char* path;  // f32 path the planner must choose
  Geometry g;
  PaddingModes modes;
};

ConvParams params_of(const Case& c) {
  ConvParams p = check::conv_params(c.g.stride, c.g.pad_lo, c.g.pad_hi, c.g.dilation, c.g.groups);
  p.padding_mode = c.modes;
  return p;
}

Shape5 weight_shape(const Geometry& g) {
  return {g.c_out, g.kernel[0], g.kernel[1], g.kernel[2], g.input[4] / g.groups};
}

// The padded input as an Array of float64 (contiguous), and the geometry of
// a zero-padding-free conv over it.
Array padded_input(const Case& c, Array& x) {
  const Geometry& g = c.g;
  Shape5 ps = g.input;
  for (int i = 0; i < 3; ++i) ps[i + 1] += g.pad_lo[i] + g.pad_hi[i];
  Array xp = make_array(DType::float64, ps, Layout::contiguous);
  for_each_index(ps, [&](const Shape5& i) {
    Shape5 s = i;
    bool zero = false;
    for (int a = 0; a < 3; ++a) {
      s[a + 1] = source_of(c.modes[a], g.input[a + 1], i[a + 1] - g.pad_lo[a]);
      zero = zero || s[a + 1] < 0;
    }
    xp.buf.set(xp.offset(i), zero ? 0.0 : x.buf.get(x.offset(s)));
  });
  return xp;
}

Geometry unpadded(const Case& c, const Array& xp) {
  Geometry g = c.g;
  g.input = xp.shape;
  g.pad_lo = g.pad_hi = {0, 0, 0};
  return g;
}

void fill(Array& a, std::mt19937& rng) {
  std::uniform_int_distribution<int> small(-16, 16);
  for_each_index(a.shape, [&](const Shape5& i) { a.buf.set(a.offset(i), small(rng) / 8.0); });
}

double dot(Array& a, Array& b) {
  double s = 0;
  for_each_index(a.shape, [&](const Shape5& i) { s += a.buf.get(a.offset(i)) * b.buf.get(b.offset(i)); });
  return s;
}

std::string label(const Case& c, DType t) {
  std::string s = cpu::active_isa() + " " + c.g.name + " " + dtype_name(t) + " modes";
  for (PaddingMode m : c.modes) s += std::string(" ") + padding_mode_name(m);
  return s;
}

// Values k/8 (|k| <= 16) are exact in every dtype, their products' sums in
// float32: f32/f64 must match exactly, f16/bf16 up to the output rounding
// (and the input gradient's second rounding where padded positions fold in).
double tolerance(DType t, double want) {
  const double eps = t == DType::float16 ? std::ldexp(1.0, -10) : t == DType::bfloat16 ? std::ldexp(1.0, -7) : 0;
  return eps * std::fabs(want) + (t == DType::float16 ? 1e-3 : t == DType::bfloat16 ? 1e-2 : 0.0);
}

void compare(Array& got, const std::vector<double>& want, DType t, const std::string& what) {
  std::size_t k = 0;
  int bad = 0;
  for_each_index(got.shape, [&](const Shape5& o) {
    const double v = got.buf.get(got.offset(o));
    if (!(std::fabs(v - want[k]) <= tolerance(t, want[k])) && bad++ < 3)
      check::fail(__FILE__, __LINE__,
                  what + ": (" + std::to_string(o[0]) + "," + std::to_string(o[1]) + "," + std::to_string(o[2]) +
                      "," + std::to_string(o[3]) + "," + std::to_string(o[4]) + ") = " + std::to_string(v) +
                      ", reference " + std::to_string(want[k]));
    ++k;
  });
}

void run_forward(const Case& c, DType t) {
  const Geometry& g = c.g;
  const ConvParams p = params_of(c);
  const Shape5 ws = weight_shape(g), os = conv3d_output_shape(g.input, ws, p);
  std::mt19937 rng(7);
  Array x = make_array(t, g.input, Layout::contiguous), w = make_array(t, ws, Layout::contiguous);
  Array y = make_array(t, os, Layout::contiguous);
  fill(x, rng);
  fill(w, rng);
  const std::string what = label(c, t);
  if (t == DType::float32) {
    const cpu::CpuPlan plan = cpu::testing::plan(ConstTensorView{nullptr, t, x.shape, x.strides},
                                                 ConstTensorView{nullptr, t, ws, w.strides}, p);
    if (std::string(cpu::path_name(plan.path)) != c.path)
      check::fail(__FILE__, __LINE__, what + ": planned " + plan.describe() + ", expected path " + c.path);
  }
  try {
    conv3d(ConstTensorView{x.buf.at(0), t, x.shape, x.strides}, ConstTensorView{w.buf.at(0), t, ws, w.strides},
           TensorView{y.buf.at(0), t, os, y.strides}, p, cpu_stream);
  } catch (const std::exception& e) {
    check::fail(__FILE__, __LINE__, what + ": conv3d threw " + e.what());
    return;
  }
  Array xp = padded_input(c, x);
  std::vector<double> ref, mag;
  reference(unpadded(c, xp), xp, w, os, ref, mag);
  compare(y, ref, t, what + " forward");
}

// Both gradients in float64 (exact here) against loops over the padded
// input, and the adjoint identities.
void run_gradients(const Case& c) {
  const Geometry& g = c.g;
  const DType t = DType::float64;
  const ConvParams p = params_of(c);
  const Shape5 ws = weight_shape(g), os = conv3d_output_shape(g.input, ws, p);
  std::mt19937 rng(11);
  Array x = make_array(t, g.input, Layout::contiguous), w = make_array(t, ws, Layout::contiguous);
  Array gy = make_array(t, os, Layout::contiguous), y = make_array(t, os, Layout::contiguous);
  Array gx = make_array(t, g.input, Layout::contiguous), gw = make_array(t, ws, Layout::contiguous);
  fill(x, rng);
  fill(w, rng);
  fill(gy, rng);
  const std::string what = label(c, t);
  try {
    conv3d(ConstTensorView{x.buf.at(0), t, x.shape, x.strides}, ConstTensorView{w.buf.at(0), t, ws, w.strides},
           TensorView{y.buf.at(0), t, os, y.strides}, p, cpu_stream);
    conv3d_grad_input(ConstTensorView{gy.buf.at(0), t, os, gy.strides}, ConstTensorView{w.buf.at(0), t, ws, w.strides},
                      TensorView{gx.buf.at(0), t, g.input, gx.strides}, p, cpu_stream);
    conv3d_grad_weight(ConstTensorView{x.buf.at(0), t, x.shape, x.strides},
                       ConstTensorView{gy.buf.at(0), t, os, gy.strides}, TensorView{gw.buf.at(0), t, ws, gw.strides},
                       p, cpu_stream);
  } catch (const std::exception& e) {
    check::fail(__FILE__, __LINE__, what + ": threw " + e.what());
    return;
  }
  // Input gradient: every (output, tap) adds gy * w to the input element the
  // padded position it read comes from (nothing for a zero).
  const std::int64_t cg = g.input[4] / g.groups, og = g.c_out / g.groups;
  std::vector<double> dx(std::size_t(numel(g.input)), 0.0), dw(std::size_t(numel(ws)), 0.0);
  for_each_index(os, [&](const Shape5& o) {
    const std::int64_t co = o[4], grp = co / og;
    for (std::int64_t a = 0; a < g.kernel[0]; ++a)
      for (std::int64_t b = 0; b < g.kernel[1]; ++b)
        for (std::int64_t e = 0; e < g.kernel[2]; ++e) {
          const std::int64_t k[3] = {a, b, e};
          Shape5 s{o[0], 0, 0, 0, 0};
          bool zero = false;
          for (int i = 0; i < 3; ++i) {
            s[i + 1] = source_of(c.modes[i], g.input[i + 1], o[i + 1] * g.stride[i] - g.pad_lo[i] + k[i] * g.dilation[i]);
            zero = zero || s[i + 1] < 0;
          }
          if (zero) continue;
          for (std::int64_t ci = 0; ci < cg; ++ci) {
            s[4] = grp * cg + ci;
            const Shape5 wi{co, a, b, e, ci};
            const double gyv = gy.buf.get(gy.offset(o));
            dx[std::size_t(x.offset(s))] += gyv * w.buf.get(w.offset(wi));
            dw[std::size_t(w.offset(wi))] += gyv * x.buf.get(x.offset(s));
          }
        }
  });
  compare(gx, dx, t, what + " grad_input");
  compare(gw, dw, t, what + " grad_weight");
  const double a = dot(y, gy), b = dot(x, gx), d = dot(w, gw);
  if (!(std::fabs(a - b) <= 1e-9 * std::fabs(a) + 1e-9) || !(std::fabs(a - d) <= 1e-9 * std::fabs(a) + 1e-9))
    check::fail(__FILE__, __LINE__,
                what + ": adjoint identity <y,g> = " + std::to_string(a) + ", <x,gx> = " + std::to_string(b) +
                    ", <w,gw> = " + std::to_string(d));
}

Geometry geo(const char* name, Shape5 input, std::int64_t c_out, Int3 k, Int3 lo, Int3 hi, std::int64_t groups = 1,
             Int3 stride = {1, 1, 1}, Int3 dil = {1, 1, 1}) {
  return Geometry{name, input, c_out, k, stride, lo, hi, dil, groups};
}

std::vector<Case> cases() {
  const PaddingMode Z = PaddingMode::zeros, R = PaddingMode::reflect, P = PaddingMode::replicate,
                    C = PaddingMode::circular;
  const PaddingModes mode_sets[] = {{R, R, R}, {P, P, P}, {C, C, C}, {P, R, C}, {Z, C, R}};
  const Geometry geos[] = {
      // causal temporal padding ((2, 1, 1), (0, 1, 2)): asymmetric on every axis
      geo("igemm", {1, 4, 5, 7, 8}, 21, {3, 3, 3}, {2, 1, 1}, {0, 1, 2}),
      geo("igemm_strided_dilated", {1, 5, 6, 9, 8}, 12, {3, 3, 3}, {1, 2, 2}, {1, 1, 2}, 1, {1, 2, 2}, {1, 1, 2}),
      geo("pointwise_padded", {1, 2, 3, 5, 16}, 19, {1, 1, 1}, {1, 1, 1}, {1, 0, 2}),
      geo("fold_w", {1, 3, 5, 9, 5}, 13, {3, 3, 3}, {1, 1, 2}, {1, 1, 1}),
      geo("fold_w_strided", {1, 3, 5, 10, 5}, 9, {3, 3, 3}, {1, 1, 1}, {1, 1, 2}, 1, {1, 1, 2}),
      geo("small_cin", {1, 3, 5, 9, 4}, 12, {3, 3, 3}, {1, 1, 2}, {1, 2, 1}, 2),
      geo("small_cin_strided", {1, 3, 5, 10, 4}, 12, {3, 3, 3}, {1, 1, 2}, {1, 1, 1}, 2, {1, 1, 2}, {1, 1, 2}),
      geo("cin1", {1, 4, 5, 11, 1}, 19, {3, 3, 3}, {1, 2, 2}, {1, 1, 2}),
      geo("cin3_strided", {1, 4, 5, 11, 3}, 9, {3, 3, 3}, {1, 1, 3}, {1, 1, 2}, 1, {1, 1, 2}, {1, 1, 2}),
      geo("dwconv", {1, 3, 4, 13, 20}, 20, {3, 3, 3}, {2, 1, 2}, {0, 1, 1}, 20),
      geo("dwconv_strided", {1, 3, 4, 12, 8}, 8, {3, 3, 5}, {1, 1, 3}, {1, 1, 2}, 8, {1, 1, 2}),
      geo("grouped", {1, 3, 4, 5, 16}, 18, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, 2, {1, 2, 1}),
      geo("small_cout", {1, 4, 5, 11, 16}, 3, {3, 3, 3}, {1, 2, 2}, {1, 1, 2}),
      geo("small_cout_grouped_strided", {1, 4, 5, 12, 18}, 8, {3, 3, 3}, {1, 1, 3}, {1, 1, 2}, 2, {1, 1, 2},
          {1, 1, 2}),
  };
  const char* paths[] = {"igemm",   "igemm",  "igemm",  "fold-w", "fold-w",     "small-cin",  "small-cin",
                         "few-cin", "few-cin", "dwconv", "dwconv", "igemm", "small-cout", "small-cout"};
  std::vector<Case> out;
  for (std::size_t i = 0; i < sizeof(geos) / sizeof(geos[0]); ++i)
    for (const PaddingModes& m : mode_sets) out.push_back({paths[i], geos[i], m});
  return out;
}

void test_validation() {
  const Shape5 in{1, 3, 4, 5, 2}, ws{2, 3, 3, 3, 2};
  ConvParams p = check::conv_params({1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1);
  p.padding_mode = {PaddingMode::zeros, PaddingMode::reflect, PaddingMode::zeros};
  p.padding_lo[1] = 4;  // reflect on an axis of 4: padding 4 would repeat the edge
  CHECK_THROWS_MSG(IA, conv3d_output_shape(in, ws, p),
                   "[conv3d] Padding mode 'reflect' needs padding smaller than the input size on each padded axis "
                   "(as torch.nn.functional.pad), but got padding low (1,4,1) and padding high (1,1,1) at axis 2 "
                   "for input with shape (1,3,4,5,2).");
  p.padding_lo[1] = 3;
  CHECK_NO_THROW(conv3d_output_shape(in, ws, p));
  p.padding_mode[2] = PaddingMode::circular;
  p.padding_hi[2] = 6;  // circular on an axis of 5: at most 5
  CHECK_THROWS_HAS(IA, conv3d_output_shape(in, ws, p), "[conv3d] Padding mode 'circular' needs padding at most");
  p.padding_hi[2] = 5;
  CHECK_NO_THROW(conv3d_output_shape(in, ws, p));
  p.padding_mode[0] = PaddingMode(9);
  CHECK_THROWS_MSG(IA, conv3d_output_shape(in, ws, p), "[conv3d] Unknown padding mode code 9 at axis 1.");
  // The gradients validate as conv3d does, naming themselves.
  ConvParams r = check::conv_params({1, 1, 1}, {3, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1);
  r.padding_mode[0] = PaddingMode::reflect;
  CHECK_THROWS_HAS(IA, conv3d_grad_input_output_shape({1, 3, 2, 3, 2}, ws, in, r),
                   "[conv3d_grad_input] Padding mode 'reflect' needs padding smaller");
  CHECK_THROWS_HAS(IA, conv3d_grad_weight_output_shape(in, {1, 3, 2, 3, 2}, ws, r),
                   "[conv3d_grad_weight] Padding mode 'reflect' needs padding smaller");
  // The Metal kernels read the padding modes; where no GPU exists the call
  // is refused for that reason, not for the mode.
  std::vector<float> x(numel(in)), w(numel(ws)), y(2 * 3 * 4 * 5);
  ConvParams q = check::conv_params({1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1);
  q.padding_mode[1] = PaddingMode::replicate;
  const Stream gpu{1, Device{DeviceType::gpu, 0}};
  if (!unavailable_reason(gpu.device).empty())
    CHECK_THROWS_HAS(IA,
                     conv3d(ConstTensorView::contiguous(x.data(), DType::float32, in),
                            ConstTensorView::contiguous(w.data(), DType::float32, ws),
                            TensorView::contiguous(y.data(), DType::float32, {1, 3, 4, 5, 2}), q, gpu),
                     "[conv3d] The gpu is not available");
}

}  // namespace

int main() {
  test_validation();
  const std::vector<Case> all = cases();
  for (const std::string& isa : cpu::supported_isas()) {
    cpu::force_isa(isa);
    for (const Case& c : all)
      for (DType t : {DType::float32, DType::float16, DType::bfloat16, DType::float64}) run_forward(c, t);
    cpu::force_isa("");
  }
  for (const Case& c : all) run_gradients(c);
  return check::result("test_padding_modes");
}
