// See op_geometry.h. conv3d's own rules (make_conv_geometry) are reused for
// its gradients, with the message's op name replaced; conv_general and
// conv_transpose3d have their own rules here, checked the same way.
#include "op_geometry.h"

#include <stdexcept>
#include <string>

#include "format.h"

namespace volconv::detail {
namespace {

// As geometry.cpp: sizes above this keep every product with a small factor in int64.
constexpr std::int64_t kMax = std::int64_t(1) << 56;

[[noreturn]] void fail(const char* op, const std::string& message) {
  throw std::invalid_argument(std::string("[") + op + "] " + message);
}

std::int64_t checked_mul(const char* op, std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t p;
  if (__builtin_mul_overflow(a, b, &p) || p > kMax || p < -kMax)
    fail(op, std::string("The ") + what + " exceeds 2^56.");
  return p;
}

void checked_numel(const char* op, const Shape5& s, const char* what) {
  std::int64_t p = 1;
  for (std::int64_t v : s) {
    if (v == 0) return;
    if (__builtin_mul_overflow(p, v, &p) || p > kMax)
      fail(op, std::string("The ") + what + " has too many elements: the product of its sizes exceeds 2^56.");
  }
}

std::string shapes_of(const Shape5& input, const Shape5& weight) {
  return "input: " + format_tuple(input) + " and weight: " + format_tuple(weight);
}

void check_int3(const char* op, const Int3& v, std::int64_t min, const char* what) {
  for (std::int64_t x : v) {
    if (x < min)
      fail(op, std::string(what) + " must be " + (min == 0 ? "non-negative" : "positive") + ". Got " + what + " " +
                   format_tuple(v) + ".");
    if (x > kMax) fail(op, std::string(what) + " must be below 2^56. Got " + what + " " + format_tuple(v) + ".");
  }
}

// Shapes, groups and channels, as conv3d checks them. Returns C_in / groups.
void check_shapes(const char* op, const Shape5& input, const Shape5& weight, std::int64_t groups) {
  for (int i = 0; i < 5; ++i) {
    if (input[i] < 0 || weight[i] < 0)
      fail(op, "Array sizes must be non-negative, but got shapes - " + shapes_of(input, weight) + ".");
  }
  if (groups < 1) fail(op, "Groups must be a positive integer. Got groups " + std::to_string(groups) + ".");
  const std::int64_t c_in = input[4], c_out = weight[0], c_in_g = weight[4];
  if (c_in < 1 || c_out < 1 || c_in_g < 1)
    fail(op, "Expected at least one input and one output channel but got shapes - " + shapes_of(input, weight) + ".");
  for (int i = 1; i < 4; ++i) {
    if (weight[i] < 1)
      fail(op, "Expected kernel spatial sizes of at least 1 but got weight of shape " + format_tuple(weight) + ".");
  }
  if (c_in % groups != 0 || c_out % groups != 0)
    fail(op, "The number of groups must divide both the input channels and the output channels. Got groups " +
                 std::to_string(groups) + " with " + std::to_string(c_in) + " input channels and " +
                 std::to_string(c_out) + " output channels.");
  if (c_in_g * groups != c_in)
    fail(op, "Expect the input channels in the input and weight array to match (C_in = groups * weight C_in, "
             "groups = " + std::to_string(groups) + ") but got shapes - " + shapes_of(input, weight) + ".");
  checked_numel(op, input, "input");
  checked_numel(op, weight, "weight");
}

ConvProblemGeometry base_geometry(const Shape5& input, const Shape5& weight, std::int64_t groups) {
  ConvProblemGeometry g;
  g.batch = input[0];
  g.in_channels = input[4];
  g.out_channels = weight[0];
  g.groups = groups;
  for (int i = 0; i < 3; ++i) {
    g.in[i] = input[i + 1];
    g.kernel[i] = weight[i + 1];
  }
  return g;
}

// conv3d's checks with the op's name in the message.
ConvGeometry conv3d_geometry(const char* op, const Shape5& input, const Shape5& weight, const ConvParams& p) {
  try {
    return make_conv_geometry(input, weight, p);
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    const std::string prefix = "[conv3d] ";
    fail(op, m.compare(0, prefix.size(), prefix) == 0 ? m.substr(prefix.size()) : m);
  }
}

Shape5 output_shape_of(const ConvProblemGeometry& g) {
  return {g.batch, g.out[0], g.out[1], g.out[2], g.out_channels};
}

}  // namespace

void check_grad_output(const char* op, const Shape5& grad_output, const Shape5& expected) {
  if (grad_output != expected)
    fail(op, "Expected grad_output of shape " + format_tuple(expected) +
                 " (the convolution's output shape) but got " + format_tuple(grad_output) + ".");
}

LoweredGeometry lower_conv_general(const char* op, const Shape5& input, const Shape5& weight,
                                   const ConvGeneralParams& p) {
  check_int3(op, p.stride, 1, "Stride sizes");
  check_int3(op, p.kernel_dilation, 1, "Kernel dilation sizes");
  check_int3(op, p.input_dilation, 1, "Input dilation sizes");
  check_int3(op, p.padding_lo, 0, "Padding sizes");
  check_int3(op, p.padding_hi, 0, "Padding sizes");
  check_shapes(op, input, weight, p.groups);
  ConvProblemGeometry g = base_geometry(input, weight, p.groups);
  g.stride = p.stride;
  g.padding_lo = p.padding_lo;
  g.kernel_dilation = p.kernel_dilation;
  g.input_dilation = p.input_dilation;
  g.flip = p.flip;
  for (int i = 0; i < 3; ++i) {
    const std::int64_t dilated = g.in[i] == 0 ? 0 : checked_mul(op, g.in[i] - 1, p.input_dilation[i], "dilated input") + 1;
    const std::int64_t padded = dilated + p.padding_lo[i] + p.padding_hi[i];
    const std::int64_t span = checked_mul(op, p.kernel_dilation[i], g.kernel[i] - 1, "dilated kernel") + 1;
    if (padded < span)
      fail(op, "Spatial dimensions of input after dilation and padding cannot be smaller than the dilated kernel. "
               "Got error at axis " + std::to_string(i + 1) + " for input with shape " + format_tuple(input) +
                   ", input dilation " + format_tuple(p.input_dilation) + ", padding low " +
                   format_tuple(p.padding_lo) + ", padding high " + format_tuple(p.padding_hi) +
                   ", kernel dilation " + format_tuple(p.kernel_dilation) + " and weight of shape " +
                   format_tuple(weight) + ".");
    g.out[i] = (padded - span) / p.stride[i] + 1;
  }
  const Shape5 out = output_shape_of(g);
  checked_numel(op, out, "output");
  return {g, out};
}

LoweredGeometry lower_conv_transpose3d(const char* op, const Shape5& input, const Shape5& weight,
                                       const ConvTransposeParams& p) {
  check_int3(op, p.stride, 1, "Stride sizes");
  check_int3(op, p.dilation, 1, "Dilation sizes");
  check_int3(op, p.padding_lo, 0, "Padding sizes");
  check_int3(op, p.padding_hi, 0, "Padding sizes");
  check_int3(op, p.output_padding, 0, "Output padding sizes");
  check_shapes(op, input, weight, p.groups);
  for (int i = 0; i < 3; ++i) {
    if (p.output_padding[i] >= std::max(p.stride[i], p.dilation[i]))
      fail(op, "Output padding must be smaller than either stride or dilation (as in PyTorch). Got output padding " +
                   format_tuple(p.output_padding) + ", stride " + format_tuple(p.stride) + " and dilation " +
                   format_tuple(p.dilation) + ".");
  }
  ConvProblemGeometry g = base_geometry(input, weight, p.groups);
  g.input_dilation = p.stride;
  g.kernel_dilation = p.dilation;
  g.flip = true;
  for (int i = 0; i < 3; ++i) {
    if (g.in[i] < 1)
      fail(op, "Expected spatial input sizes of at least 1 but got input of shape " + format_tuple(input) + ".");
    const std::int64_t reach = checked_mul(op, p.dilation[i], g.kernel[i] - 1, "dilated kernel");
    const std::int64_t size = checked_mul(op, g.in[i] - 1, p.stride[i], "dilated input") - p.padding_lo[i] -
                              p.padding_hi[i] + reach + p.output_padding[i] + 1;
    if (size < 1)
      fail(op, "The padding crops the whole output: got an output size of " + std::to_string(size) + " at axis " +
                   std::to_string(i + 1) + " for input with shape " + format_tuple(input) + ", stride " +
                   format_tuple(p.stride) + ", padding low " + format_tuple(p.padding_lo) + ", padding high " +
                   format_tuple(p.padding_hi) + ", dilation " + format_tuple(p.dilation) +
                   " and weight of shape " + format_tuple(weight) + ".");
    g.out[i] = size;
    g.padding_lo[i] = reach - p.padding_lo[i];  // negative: the output starts inside (crops)
  }
  const Shape5 out = output_shape_of(g);
  checked_numel(op, out, "output");
  return {g, out};
}

LoweredGeometry lower_conv3d_grad_input(const char* op, const Shape5& grad_output, const Shape5& weight,
                                        const Shape5& input, const ConvParams& p) {
  const ConvGeometry f = conv3d_geometry(op, input, weight, p);
  check_grad_output(op, grad_output, f.output_shape());
  ConvProblemGeometry g;
  g.batch = f.batch;
  g.in = f.out;
  g.kernel = f.kernel;
  g.out = f.in;
  g.in_channels = f.out_channels;
  g.out_channels = f.in_channels;
  g.groups = f.groups;
  g.input_dilation = p.stride;
  g.kernel_dilation = p.dilation;
  g.flip = true;
  for (int i = 0; i < 3; ++i) g.padding_lo[i] = p.dilation[i] * (f.kernel[i] - 1) - p.padding_lo[i];
  return {g, input};
}

LoweredGeometry lower_conv3d_grad_weight(const char* op, const Shape5& input, const Shape5& grad_output,
                                         const Shape5& weight, const ConvParams& p) {
  const ConvGeometry f = conv3d_geometry(op, input, weight, p);
  check_grad_output(op, grad_output, f.output_shape());
  return {forward_problem_geometry(f), weight};
}

ConvProblemGeometry forward_problem_geometry(const ConvGeometry& f) {
  ConvProblemGeometry g;
  g.batch = f.batch;
  g.in = f.in;
  g.kernel = f.kernel;
  g.out = f.out;
  g.in_channels = f.in_channels;
  g.out_channels = f.out_channels;
  g.groups = f.groups;
  g.stride = f.params.stride;
  g.padding_lo = f.params.padding_lo;
  g.kernel_dilation = f.params.dilation;
  g.padding_mode = f.params.padding_mode;
  return g;
}

ConvProblem forward_problem(const ConvCall& call) {
  ConvProblem p;
  p.op = ConvOp::data;
  p.geometry = forward_problem_geometry(call.geometry);
  p.input = call.input;
  p.weight = call.weight;
  p.result = call.output;
  return p;
}

LoweredGeometry lower_conv_transpose3d_grad_input(const char* op, const Shape5& grad_output, const Shape5& weight,
                                                  const Shape5& input, const ConvTransposeParams& p) {
  const LoweredGeometry t = lower_conv_transpose3d(op, input, weight, p);
  check_grad_output(op, grad_output, t.result_shape);
  ConvProblemGeometry g;
  g.batch = t.geometry.batch;
  g.in = t.geometry.out;
  g.kernel = t.geometry.kernel;
  g.out = t.geometry.in;
  g.in_channels = t.geometry.out_channels;
  g.out_channels = t.geometry.in_channels;
  g.groups = t.geometry.groups;
  g.stride = p.stride;
  g.padding_lo = p.padding_lo;
  g.kernel_dilation = p.dilation;
  return {g, input};
}

}  // namespace volconv::detail
