// Validation of a conv3d call's shapes and parameters: the one place where
// both the Python and the C++ API decide what is a valid call.
#include <limits>
#include <stdexcept>
#include <string>

#include "format.h"
#include "volconv/params.h"

namespace volconv {
namespace {

using detail::format_tuple;

// Sizes above this are refused: they keep every product of a size with a
// small factor (a stride, an element size) inside int64.
constexpr std::int64_t kMaxElements = std::int64_t(1) << 56;
// The reduction per output (KD*KH*KW*C_in/groups) and the weight packed
// with each group's output channels rounded up to the widest tile stay
// below these, so the kernels' scratch and packed-weight sizes (these times
// a tile of at most 2^12 bytes) fit in int64. Only a zero-strided
// (broadcast) weight can come near them.
constexpr std::int64_t kMaxReduction = std::int64_t(1) << 48;
constexpr std::int64_t kWidestTile = 64;

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("[conv3d] " + message);
}

std::int64_t checked_product(std::initializer_list<std::int64_t> factors, const char* what) {
  std::int64_t p = 1;
  for (std::int64_t f : factors) {
    if (f == 0) return 0;
    if (__builtin_mul_overflow(p, f, &p) || p > kMaxElements)
      fail(std::string("The ") + what + " has too many elements: the product of its sizes exceeds 2^56.");
  }
  return p;
}

std::string shapes_of(const Shape5& input, const Shape5& weight) {
  return "input: " + format_tuple(input) + " and weight: " + format_tuple(weight);
}

// torch.nn.functional.pad's rules: a reflected border may not repeat the
// edge (padding < size), a wrapped one may wrap once (padding <= size), and
// replicate needs an element to repeat.
void check_padding_mode(const ConvParams& p, const Shape5& input, int i) {
  const PaddingMode m = p.padding_mode[i];
  if (int(m) > int(PaddingMode::circular))
    fail("Unknown padding mode code " + std::to_string(int(m)) + " at axis " + std::to_string(i + 1) + ".");
  const std::int64_t n = input[i + 1], lo = p.padding_lo[i], hi = p.padding_hi[i];
  const char* need = nullptr;
  if (m == PaddingMode::reflect && (lo >= n || hi >= n) && (lo > 0 || hi > 0))
    need = "padding smaller than the input size";
  else if (m == PaddingMode::circular && (lo > n || hi > n))
    need = "padding at most the input size";
  else if (m == PaddingMode::replicate && n == 0 && (lo > 0 || hi > 0))
    need = "a non-empty input";
  if (need)
    fail(std::string("Padding mode '") + padding_mode_name(m) + "' needs " + need +
         " on each padded axis (as torch.nn.functional.pad), but got padding low " + format_tuple(p.padding_lo) +
         " and padding high " + format_tuple(p.padding_hi) + " at axis " + std::to_string(i + 1) +
         " for input with shape " + format_tuple(input) + ".");
}

}  // namespace

const char* padding_mode_name(PaddingMode mode) {
  switch (mode) {
    case PaddingMode::zeros: return "zeros";
    case PaddingMode::reflect: return "reflect";
    case PaddingMode::replicate: return "replicate";
    case PaddingMode::circular: return "circular";
  }
  return "?";
}

double ConvGeometry::flops() const {
  return 2.0 * double(batch) * double(out[0]) * double(out[1]) * double(out[2]) *
         double(out_channels) * double(kernel[0]) * double(kernel[1]) * double(kernel[2]) *
         double(in_channels_per_group);
}

ConvGeometry make_conv_geometry(const Shape5& input, const Shape5& weight, const ConvParams& p) {
  for (int i = 0; i < 5; ++i) {
    if (input[i] < 0 || weight[i] < 0)
      fail("Array sizes must be non-negative, but got shapes - " + shapes_of(input, weight) + ".");
  }
  for (int i = 0; i < 3; ++i) {
    if (p.stride[i] < 1) fail("Stride sizes must be positive. Got strides " + format_tuple(p.stride) + ".");
    if (p.dilation[i] < 1)
      fail("Kernel dilation sizes must be positive. Got kernel dilation " + format_tuple(p.dilation) + ".");
    if (p.padding_lo[i] < 0 || p.padding_hi[i] < 0)
      fail("Padding sizes must be non-negative. Got padding low " + format_tuple(p.padding_lo) +
           " and padding high " + format_tuple(p.padding_hi) + ".");
    if (p.stride[i] > kMaxElements || p.dilation[i] > kMaxElements || p.padding_lo[i] > kMaxElements ||
        p.padding_hi[i] > kMaxElements)
      fail("Stride, padding and dilation must be below 2^56.");
  }
  if (p.groups < 1) fail("Groups must be a positive integer. Got groups " + std::to_string(p.groups) + ".");

  const std::int64_t c_in = input[4], c_out = weight[0], c_in_g = weight[4];
  if (c_in < 1 || c_out < 1 || c_in_g < 1)
    fail("Expected at least one input and one output channel but got shapes - " + shapes_of(input, weight) + ".");
  for (int i = 1; i < 4; ++i) {
    if (weight[i] < 1)
      fail("Expected kernel spatial sizes of at least 1 but got weight of shape " + format_tuple(weight) + ".");
  }
  if (c_in % p.groups != 0 || c_out % p.groups != 0)
    fail("The number of groups must divide both the input channels and the output channels. Got groups " +
         std::to_string(p.groups) + " with " + std::to_string(c_in) + " input channels and " +
         std::to_string(c_out) + " output channels.");
  if (c_in_g * p.groups != c_in)
    fail("Expect the input channels in the input and weight array to match (C_in = groups * weight C_in, groups = " +
         std::to_string(p.groups) + ") but got shapes - " + shapes_of(input, weight) + ".");

  checked_product({input[0], input[1], input[2], input[3], input[4]}, "input");
  checked_product({weight[0], weight[1], weight[2], weight[3], weight[4]}, "weight");
  const std::int64_t cout_g_padded = (c_out / p.groups + kWidestTile - 1) / kWidestTile * kWidestTile;
  checked_product({p.groups, cout_g_padded, weight[1], weight[2], weight[3], c_in_g}, "packed weight (output channels per group rounded up to 64)");
  const std::int64_t reduction = checked_product({weight[1], weight[2], weight[3], c_in_g}, "reduction");
  if (reduction > kMaxReduction)
    fail("The kernel is too large: KD*KH*KW*C_in/groups = " + std::to_string(reduction) +
         " exceeds 2^48. Got weight of shape " + format_tuple(weight) + ".");

  ConvGeometry g;
  g.batch = input[0];
  g.in_channels = c_in;
  g.out_channels = c_out;
  g.groups = p.groups;
  g.in_channels_per_group = c_in_g;
  g.out_channels_per_group = c_out / p.groups;
  g.params = p;
  for (int i = 0; i < 3; ++i) {
    g.in[i] = input[i + 1];
    g.kernel[i] = weight[i + 1];
    check_padding_mode(p, input, i);
    const std::int64_t padded = g.in[i] + p.padding_lo[i] + p.padding_hi[i];
    const std::int64_t span = checked_product({p.dilation[i], g.kernel[i] - 1}, "dilated kernel") + 1;
    if (padded < span)
      fail("Spatial dimensions of input after padding cannot be smaller than the dilated kernel. Got error at axis " +
           std::to_string(i + 1) + " for input with shape " + format_tuple(input) + ", padding low " +
           format_tuple(p.padding_lo) + ", padding high " + format_tuple(p.padding_hi) + ", dilation " +
           format_tuple(p.dilation) + " and weight of shape " + format_tuple(weight) + ".");
    g.out[i] = (padded - span) / p.stride[i] + 1;
  }
  checked_product({g.batch, g.out[0], g.out[1], g.out[2], g.out_channels}, "output");
  return g;
}

Shape5 conv3d_output_shape(const Shape5& input, const Shape5& weight, const ConvParams& params) {
  return make_conv_geometry(input, weight, params).output_shape();
}

void set_same_padding(ConvParams& params, const Int3& kernel) {
  for (int i = 0; i < 3; ++i) {
    if (params.stride[i] != 1)
      fail("padding='same' is only supported with stride 1, but got strides " + format_tuple(params.stride) + ".");
    if (kernel[i] < 1 || params.dilation[i] < 1)
      fail("padding='same' needs positive kernel sizes and dilations.");
    std::int64_t total = 0;
    if (__builtin_mul_overflow(params.dilation[i], kernel[i] - 1, &total) || total > kMaxElements)
      fail("padding='same' needs padding dilation*(kernel-1) below 2^56, but got dilation " +
           format_tuple(params.dilation) + " and kernel sizes " + format_tuple(kernel) + ".");
    params.padding_lo[i] = total / 2;
    params.padding_hi[i] = total - total / 2;
  }
}

}  // namespace volconv
