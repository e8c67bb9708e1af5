// Packed weights (volconv/packed_weights.h): packing takes a copy of the
// weights and the CPU's packed panel for the params it is given; a conv3d
// call with them first checks it is the call they were packed for, then
// runs conv3d's own checks and path with the copy as the weight.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cpu/prepacked_weights.h"
#include "backend.h"
#include "format.h"
#include "view_checks.h"
#include "volconv/cpu.h"
#include "volconv/packed_weights.h"
#include "workspace.h"

namespace volconv {
namespace detail {

void conv3d_checked(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                    const ConvParams& params, const Stream& stream, const cpu::PrepackedWeights* prepacked);

struct PackedConv3dState {
  Shape5 weight_shape{};
  DType weight_dtype{}, input_dtype{};
  ConvParams params;  // epilogue cleared
  std::vector<unsigned char> weight_copy;  // contiguous, the weight dtype's bits
  cpu::PrepackedWeights prepacked;
  ConstTensorView weight() const {
    return ConstTensorView::contiguous(weight_copy.data(), weight_dtype, weight_shape);
  }
};

}  // namespace detail

namespace {

using detail::format_tuple;

[[noreturn]] void fail_pack(const std::string& message) {
  throw std::invalid_argument("[pack_conv3d_weights] " + message);
}
[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("[conv3d] " + message); }

bool known_dtype(DType d) {
  return d == DType::float16 || d == DType::bfloat16 || d == DType::float32 || d == DType::float64;
}

// The params that decide the geometry (everything but the epilogue), as text.
std::string describe(const ConvParams& p) {
  std::string s = "stride " + format_tuple(p.stride) + ", padding " + format_tuple(p.padding_lo) + " to " +
                  format_tuple(p.padding_hi) + ", dilation " + format_tuple(p.dilation) + ", groups " +
                  std::to_string(p.groups) + ", padding modes (";
  for (int i = 0; i < 3; ++i) s += std::string(i ? "," : "") + padding_mode_name(p.padding_mode[i]);
  return s + ")";
}

bool same_geometry(const ConvParams& a, const ConvParams& b) {
  return a.stride == b.stride && a.padding_lo == b.padding_lo && a.padding_hi == b.padding_hi &&
         a.dilation == b.dilation && a.groups == b.groups && a.padding_mode == b.padding_mode;
}

// A contiguous copy of the weight's elements (bits unchanged).
std::vector<unsigned char> copy_contiguous(const ConstTensorView& w) {
  const std::size_t esize = dtype_size(w.dtype);
  std::vector<unsigned char> out = detail::workspace(std::size_t(numel(w.shape)) * esize, "the packed weights' copy",
                                                     static_cast<unsigned char>(0));
  const auto* src = static_cast<const unsigned char*>(w.data);
  const Shape5& s = w.shape;
  const Shape5& st = w.strides;
  std::size_t i = 0;
  for (std::int64_t a = 0; a < s[0]; ++a)
    for (std::int64_t b = 0; b < s[1]; ++b)
      for (std::int64_t c = 0; c < s[2]; ++c)
        for (std::int64_t d = 0; d < s[3]; ++d)
          for (std::int64_t e = 0; e < s[4]; ++e, i += esize)
            std::memcpy(out.data() + i,
                        src + (a * st[0] + b * st[1] + c * st[2] + d * st[3] + e * st[4]) * std::int64_t(esize),
                        esize);
  return out;
}

}  // namespace

const Shape5& PackedConv3dWeights::weight_shape() const { return state_->weight_shape; }
DType PackedConv3dWeights::weight_dtype() const { return state_->weight_dtype; }
DType PackedConv3dWeights::input_dtype() const { return state_->input_dtype; }
const ConvParams& PackedConv3dWeights::params() const { return state_->params; }
const std::string& PackedConv3dWeights::isa() const { return state_->prepacked.isa; }
ConstTensorView PackedConv3dWeights::weight() const { return state_->weight(); }
std::size_t PackedConv3dWeights::packed_bytes() const {
  const cpu::PrepackedWeights& p = state_->prepacked;
  return (p.f32.size() + p.winograd_f32.size()) * sizeof(float) + p.bf16.size() * sizeof(std::uint16_t);
}

PackedConv3dWeights pack_conv3d_weights(const ConstTensorView& weight, DType input_dtype, const ConvParams& params) {
  if (!known_dtype(weight.dtype)) fail_pack("Unknown dtype code " + std::to_string(int(weight.dtype)) + " for the weight.");
  if (!known_dtype(input_dtype)) fail_pack("Unknown dtype code " + std::to_string(int(input_dtype)) + " for the input.");
  if (weight.metal_buffer != nullptr || (weight.data == nullptr && numel(weight.shape) != 0))
    fail_pack("Expected the weight in host memory (packed weights run on the cpu).");
  if (!detail::strides_fit(weight.shape, weight.strides))
    fail_pack("The strides of the weight " + format_tuple(weight.strides) + " reach past 2^59 elements.");
  // An input the geometry accepts for any params: each spatial size covers
  // the dilated kernel and both paddings (the packing depends on none of them).
  Shape5 in_shape{1, 1, 1, 1, 0};
  for (int i = 0; i < 3; ++i) {
    std::int64_t ext = 0, k = weight.shape[1 + i];
    if (k < 1 || params.dilation[i] < 1 || params.padding_lo[i] < 0 || params.padding_hi[i] < 0 ||
        __builtin_mul_overflow(params.dilation[i], k - 1, &ext) ||
        __builtin_add_overflow(ext, params.padding_lo[i] + 1, &ext) ||
        __builtin_add_overflow(ext, params.padding_hi[i] + 1, &ext) || ext > detail::kMaxReach)
      fail_pack("Expected a weight (C_out, KD, KH, KW, C_in / groups) with kernel sizes >= 1, dilation >= 1 and "
                "padding >= 0 that fit, but got weight " + format_tuple(weight.shape) + " and " + describe(params) + ".");
    in_shape[1 + i] = ext;
  }
  if (params.groups < 1 || weight.shape[0] % params.groups != 0 ||
      __builtin_mul_overflow(weight.shape[4], params.groups, &in_shape[4]))
    fail_pack("Expected groups >= 1 dividing the weight's C_out " + std::to_string(weight.shape[0]) + " but got " +
              std::to_string(params.groups) + ".");
  ConvParams p = params;
  p.epilogue = Epilogue{};
  ConvGeometry g;
  try {
    g = make_conv_geometry(in_shape, weight.shape, p);
  } catch (const std::invalid_argument& e) {
    std::string m = e.what();
    if (m.rfind("[conv3d] ", 0) == 0) m = m.substr(9);
    fail_pack(m);
  }
  auto state = std::make_shared<detail::PackedConv3dState>();
  state->weight_shape = weight.shape;
  state->weight_dtype = weight.dtype;
  state->input_dtype = input_dtype;
  state->params = p;
  detail::naming_allocation_failures("pack_conv3d_weights", [&] {
    state->weight_copy = copy_contiguous(weight);
    const ConstTensorView in{nullptr, input_dtype, in_shape, contiguous_strides(in_shape)};
    TensorView out;
    out.dtype = promote_types(input_dtype, weight.dtype);
    out.shape = g.output_shape();
    out.strides = contiguous_strides(out.shape);
    state->prepacked = cpu::prepack_conv3d(detail::ConvCall{g, in, state->weight(), out});
  });
  return PackedConv3dWeights(std::move(state));
}

void conv3d(const ConstTensorView& input, const PackedConv3dWeights& weight, const TensorView& output,
            const ConvParams& params, const Stream& stream) {
  if (weight.empty()) fail("The packed weights are empty; make them with pack_conv3d_weights.");
  const detail::PackedConv3dState& s = *weight.state();
  if (stream.device.type != DeviceType::cpu) fail("Packed weights run on the cpu only, but the stream is on the gpu.");
  if (!same_geometry(params, s.params))
    fail("The weights were packed for " + describe(s.params) + " but the call has " + describe(params) + ".");
  if (input.dtype != s.input_dtype)
    fail(std::string("The weights were packed for a ") + dtype_name(s.input_dtype) + " input but the input is " +
         (known_dtype(input.dtype) ? dtype_name(input.dtype) : "of an unknown dtype") + ".");
  const std::string isa = cpu::active_isa();
  if (isa != s.prepacked.isa)
    fail("The weights were packed for the CPU kernel set '" + s.prepacked.isa + "' but '" + isa +
         "' is active now; pack them again.");
  detail::conv3d_checked(input, s.weight(), output, params, stream, &s.prepacked);
}

// Packed weights run on the cpu whatever the default device is.
void conv3d(const ConstTensorView& input, const PackedConv3dWeights& weight, const TensorView& output,
            const ConvParams& params) {
  conv3d(input, weight, output, params, default_stream(Device{}));
}

}  // namespace volconv
