// Packed weights (volconv/packed_weights.h) on every CPU kernel set this
// machine runs: conv3d with the handle writes exactly the bytes conv3d with
// the plain weight writes, and both match the float64 reference (values
// k/8: every sum is exact in float32, so f32/f64 results equal it and
// f16/bf16 results are its rounding, within one ulp); calls the handle was not packed for,
// an empty handle and bad packing arguments are refused by name.
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "conv_reference.h"
#include "volconv/cpu.h"
#include "volconv/packed_weights.h"

using namespace volconv;
using namespace conv_reference;

namespace {

const Stream kCpu = default_stream(Device{DeviceType::cpu, 0});

// Runs g with the plain and the packed weight (x in layout lx) and compares.
void run(const Geometry& g, DType tx, DType tw, Layout lx, std::uint32_t seed) {
  const Shape5 wshape{g.c_out, g.kernel[0], g.kernel[1], g.kernel[2], g.input[4] / g.groups};
  const ConvParams p = check::conv_params(g.stride, g.pad_lo, g.pad_hi, g.dilation, g.groups);
  const Shape5 out_shape = conv3d_output_shape(g.input, wshape, p);
  const DType ty = promote_types(tx, tw);
  Array x = make_array(tx, g.input, lx), w = make_array(tw, wshape, Layout::contiguous);
  Array y0 = make_array(ty, out_shape, Layout::contiguous), y1 = make_array(ty, out_shape, Layout::contiguous);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-16, 16);
  for_each_index(g.input, [&](const Shape5& i) { x.buf.set(x.offset(i), small(rng) / 8.0); });
  for_each_index(wshape, [&](const Shape5& i) { w.buf.set(w.offset(i), small(rng) / 8.0); });
  const ConstTensorView xv{x.buf.at(x.base), tx, x.shape, x.strides};
  const ConstTensorView wv{w.buf.at(w.base), tw, w.shape, w.strides};
  const std::string label = cpu::active_isa() + " " + g.name + " " + dtype_name(tx) + "*" + dtype_name(tw);
  try {
    const PackedConv3dWeights packed = pack_conv3d_weights(wv, tx, p);
    conv3d(xv, wv, TensorView{y0.buf.at(0), ty, out_shape, y0.strides}, p, kCpu);
    for (std::int64_t i = 0; i < numel(wshape); ++i) w.buf.set(i, 0.0);  // the handle holds its own copy
    conv3d(xv, packed, TensorView{y1.buf.at(0), ty, out_shape, y1.strides}, p, kCpu);
  } catch (const std::exception& e) {
    check::fail(__FILE__, __LINE__, label + ": threw " + e.what());
    return;
  }
  if (y0.buf.bytes != y1.buf.bytes) check::fail(__FILE__, __LINE__, label + ": packed result differs from plain");
  // The reference with the weights as they were (restored from the same seed).
  rng.seed(seed);
  for_each_index(g.input, [&](const Shape5&) { (void)small(rng); });
  for_each_index(wshape, [&](const Shape5& i) { w.buf.set(w.offset(i), small(rng) / 8.0); });
  std::vector<double> ref, mag;
  reference(g, x, w, out_shape, ref, mag);
  // f32/f64: exact; f16/bf16: the exact sum rounded once (within one unit
  // in the last place of the result dtype).
  const double ulp = ty == DType::bfloat16 ? std::ldexp(1.0, -8) : ty == DType::float16 ? std::ldexp(1.0, -10) : 0.0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    if (std::fabs(y1.buf.get(std::int64_t(i)) - ref[i]) > ulp * std::fabs(ref[i])) {
      check::fail(__FILE__, __LINE__, label + ": differs from the reference at " + std::to_string(i));
      return;
    }
}

Geometry geo(const char* name, Shape5 input, std::int64_t c_out, Int3 k, std::int64_t groups = 1,
             Int3 stride = {1, 1, 1}) {
  return Geometry{name, input, c_out, k, stride, {1, 1, 1}, {1, 0, 1}, {1, 1, 1}, groups};
}

void errors() {
  const Shape5 wshape{8, 3, 3, 3, 4}, xshape{1, 4, 5, 6, 4};
  std::vector<float> w(std::size_t(numel(wshape)), 0.5f), x(std::size_t(numel(xshape)), 1.0f);
  const ConstTensorView wv = ConstTensorView::contiguous(w.data(), DType::float32, wshape);
  const ConstTensorView xv = ConstTensorView::contiguous(x.data(), DType::float32, xshape);
  ConvParams p;
  p.padding_lo = p.padding_hi = {1, 1, 1};
  const PackedConv3dWeights packed = pack_conv3d_weights(wv, DType::float32, p);
  std::vector<float> y(std::size_t(numel(conv3d_output_shape(xshape, wshape, p))));
  const TensorView yv = TensorView::contiguous(y.data(), DType::float32, conv3d_output_shape(xshape, wshape, p));
  ConvParams other = p;
  other.stride = {1, 1, 2};
  CHECK_THROWS_HAS(std::invalid_argument, conv3d(xv, packed, yv, other, kCpu),
                   "[conv3d] The weights were packed for stride (1,1,1), padding (1,1,1) to (1,1,1), dilation "
                   "(1,1,1), groups 1, padding modes (zeros,zeros,zeros) but the call has stride (1,1,2)");
  other = p;
  other.padding_mode[1] = PaddingMode::replicate;
  CHECK_THROWS_HAS(std::invalid_argument, conv3d(xv, packed, yv, other, kCpu), "padding modes (zeros,replicate,zeros).");
  std::vector<double> x64(x.size(), 1.0);
  const ConstTensorView x64v = ConstTensorView::contiguous(x64.data(), DType::float64, xshape);
  CHECK_THROWS_MSG(std::invalid_argument, conv3d(x64v, packed, yv, p, kCpu),
                   "[conv3d] The weights were packed for a float32 input but the input is float64.");
  CHECK_THROWS_MSG(std::invalid_argument, conv3d(xv, PackedConv3dWeights{}, yv, p, kCpu),
                   "[conv3d] The packed weights are empty; make them with pack_conv3d_weights.");
  CHECK_THROWS_MSG(std::invalid_argument, conv3d(xv, packed, yv, p, Stream{1, Device{DeviceType::gpu, 0}}),
                   "[conv3d] Packed weights run on the cpu only, but the stream is on the gpu.");
  // conv3d's own checks still run (here: the output shape).
  const TensorView small{y.data(), DType::float32, {1, 1, 1, 1, 8}, contiguous_strides({1, 1, 1, 1, 8})};
  CHECK_THROWS_HAS(std::invalid_argument, conv3d(xv, packed, small, p, kCpu), "[conv3d] Expected an output of shape");
  const std::vector<std::string> isas = cpu::supported_isas();
  if (isas.size() > 1) {
    cpu::force_isa(isas.back());
    CHECK_THROWS_MSG(std::invalid_argument, conv3d(xv, packed, yv, p, kCpu),
                     "[conv3d] The weights were packed for the CPU kernel set '" + isas.front() + "' but '" +
                         isas.back() + "' is active now; pack them again.");
    cpu::force_isa("");
  }
  ConvParams bad = p;
  bad.groups = 3;
  CHECK_THROWS_MSG(std::invalid_argument, pack_conv3d_weights(wv, DType::float32, bad),
                   "[pack_conv3d_weights] Expected groups >= 1 dividing the weight's C_out 8 but got 3.");
  bad = p;
  bad.dilation = {1, 0, 1};
  CHECK_THROWS_HAS(std::invalid_argument, pack_conv3d_weights(wv, DType::float32, bad), "[pack_conv3d_weights] ");
  CHECK_THROWS_HAS(std::invalid_argument, pack_conv3d_weights(wv, DType(42), p),
                   "[pack_conv3d_weights] Unknown dtype code 42 for the input.");
}

}  // namespace

int main() {
  const DType f32 = DType::float32, f16 = DType::float16, bf16 = DType::bfloat16, f64 = DType::float64;
  for (const std::string& isa : cpu::supported_isas()) {
    cpu::force_isa(isa);
    std::uint32_t seed = 1;
    for (DType t : {f32, f16, bf16, f64}) {
      run(geo("igemm", {2, 3, 4, 7, 8}, 16, {3, 3, 3}), t, t, Layout::contiguous, seed++);
      run(geo("bf16_pairs_or_packed_a", {1, 3, 4, 7, 8}, 24, {3, 3, 3}), t, t, Layout::contiguous, seed++);
      run(geo("grouped_strided", {1, 4, 5, 9, 12}, 10, {2, 3, 3}, 2, {1, 2, 2}), t, t, Layout::contiguous, seed++);
      run(geo("small_cin", {1, 4, 5, 6, 3}, 7, {3, 3, 3}), t, t, Layout::contiguous, seed++);
      run(geo("depthwise", {1, 4, 5, 6, 6}, 6, {3, 3, 3}, 6), t, t, Layout::contiguous, seed++);
      run(geo("ncdhw_view", {2, 3, 4, 7, 8}, 16, {3, 3, 3}), t, t, Layout::permuted, seed++);
    }
    run(geo("mixed_f32_x_bf16", {2, 3, 4, 7, 8}, 16, {3, 3, 3}), f32, bf16, Layout::contiguous, 99);
  }
  cpu::force_isa("");
  errors();
  return check::result("test_packed_weights");
}
