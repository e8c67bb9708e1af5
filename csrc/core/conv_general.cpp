// Front doors of conv_general, conv_transpose3d and the gradients: lower the
// call (op_geometry.cpp), check the views against it as conv3d checks its
// own, and hand the ConvProblem to the backend.
#include "volconv/conv_general.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "backend.h"
#include "conv_problem.h"
#include "format.h"
#include "gpu_backend.h"
#include "op_geometry.h"
#include "view_checks.h"
#include "workspace.h"

namespace volconv {
namespace detail {
int gpu_queue_of(const Stream& stream);
}
namespace {

using detail::ConvOp;
using detail::ConvProblem;
using detail::format_tuple;
using detail::byte_range;
using detail::ByteRange;
using detail::strides_fit;
using detail::with_host_address;
using detail::writes_each_element_once;
using detail::LoweredGeometry;
using detail::WeightLayout;


struct Checker {
  const char* op;
  [[noreturn]] void fail(const std::string& m) const { throw std::invalid_argument(std::string("[") + op + "] " + m); }

  void dtype(DType d, const char* what) const {
    if (d != DType::float16 && d != DType::bfloat16 && d != DType::float32 && d != DType::float64)
      fail(std::string("Unknown dtype code ") + std::to_string(int(d)) + " for the " + what + ".");
  }

  void shape(const Shape5& got, const Shape5& expected, const char* what) const {
    if (got != expected)
      fail(std::string("Expected the ") + what + " of shape " + format_tuple(expected) + " but got " +
           format_tuple(got) + ".");
  }

  void view(const ConstTensorView& v, const char* what) const {
    if (v.data == nullptr && v.metal_buffer == nullptr && numel(v.shape) != 0)
      fail(std::string("The ") + what + " has a null data pointer.");
    if (!strides_fit(v.shape, v.strides))
      fail(std::string("The strides of the ") + what + " " + format_tuple(v.strides) + " reach past 2^59 elements.");
  }
};


// Checks the two read views and the written one, then runs the problem.
// a and b are the operands in argument order (names for messages).
void run(const Checker& c, ConvProblem problem, const LoweredGeometry& lowered, const ConstTensorView& a,
         const char* a_name, const ConstTensorView& b, const char* b_name, const TensorView& result,
         const char* result_name, const Stream& stream) {
  c.dtype(a.dtype, a_name);
  c.dtype(b.dtype, b_name);
  c.dtype(result.dtype, result_name);
  const DType expected = promote_types(a.dtype, b.dtype);
  if (result.dtype != expected)
    c.fail(std::string("Expected the ") + result_name + " dtype to be " + dtype_name(expected) +
           " (the promotion of " + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) + ") but got " +
           dtype_name(result.dtype) + ".");
  c.shape(result.shape, lowered.result_shape, result_name);
  c.view(a, a_name);
  c.view(b, b_name);
  c.view(result, result_name);
  if (numel(result.shape) == 0) return;
  if (!writes_each_element_once(result.shape, result.strides))
    c.fail("The " + std::string(result_name) + " strides " + format_tuple(result.strides) +
           " make elements of shape " + format_tuple(result.shape) + " overlap.");
  const ConstTensorView ha = with_host_address(a), hb = with_host_address(b);
  const TensorView out = with_host_address(result);
  for (const ConstTensorView* v : {&ha, &hb}) {
    if (numel(v->shape) == 0 || v->data == nullptr || out.data == nullptr) continue;
    const ByteRange o = byte_range(out.data, out.dtype, out.shape, out.strides);
    const ByteRange r = byte_range(v->data, v->dtype, v->shape, v->strides);
    if (r.lo <= o.hi && o.lo <= r.hi)
      c.fail("The " + std::string(result_name) + " must not overlap the " + a_name + " or the " + b_name + ".");
  }
  const bool gpu = stream.device.type == DeviceType::gpu;
  const std::string why = unavailable_reason(stream.device);
  if (!why.empty()) c.fail(std::string("The ") + (gpu ? "gpu" : "cpu") + " is not available: " + why + ".");
  problem.geometry = lowered.geometry;
  problem.result = out;
  problem.input = ha;
  (problem.op == ConvOp::data ? problem.weight : problem.output) = hb;
  // An explicit GPU stream runs the GPU backend's kernels (Metal: csrc/metal_plan
  // plans them; CUDA: csrc/cuda/depthwise_plan);
  // calls without a stream stay on the CPU.
  if (gpu) {
    detail::naming_allocation_failures(c.op,
                                       [&] { detail::gpu_run_problem(problem, c.op, detail::gpu_queue_of(stream)); });
    return;
  }
  const ConstTensorView out_view = out;
  for (const ConstTensorView* v : {&ha, &hb, &out_view}) {
    if (v->data == nullptr && numel(v->shape) != 0)
      c.fail("A view in a Metal buffer the CPU cannot read (private storage, or a build without Metal) "
             "cannot be used on the CPU.");
  }
  // An empty batch reaches the backend for a weight gradient: it writes zeros.
  detail::naming_allocation_failures(c.op, [&] { cpu::run_problem(problem); });
}

ConvProblem data_problem(WeightLayout layout, detail::ZeroTaps zero_taps) {
  ConvProblem p;
  p.op = ConvOp::data;
  p.weight_layout = layout;
  p.zero_taps = zero_taps;
  return p;
}

// MLX's CPU conv_general multiplies the padding (an explicit GEMM over a
// padded copy) only without dilation and groups; its other path loops over
// the real input elements only.
detail::ZeroTaps mlx_zero_taps(const ConvGeneralParams& p) {
  bool plain = p.groups == 1;
  for (int i = 0; i < 3; ++i) plain = plain && p.kernel_dilation[i] == 1 && p.input_dilation[i] == 1;
  return plain ? detail::ZeroTaps::multiplied : detail::ZeroTaps::skipped;
}

ConvProblem weight_grad_problem(detail::ZeroTaps zero_taps) {
  ConvProblem p;
  p.op = ConvOp::weight_grad;
  p.zero_taps = zero_taps;
  return p;
}

Stream default_cpu_stream() { return default_stream(default_device()); }

}  // namespace

Shape5 conv_general_output_shape(const Shape5& input, const Shape5& weight, const ConvGeneralParams& params) {
  return detail::lower_conv_general("conv_general", input, weight, params).result_shape;
}

void conv_general(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                  const ConvGeneralParams& params, const Stream& stream) {
  const Checker c{"conv_general"};
  c.dtype(input.dtype, "input");
  c.dtype(weight.dtype, "weight");
  const LoweredGeometry l = detail::lower_conv_general(c.op, input.shape, weight.shape, params);
  run(c, data_problem(WeightLayout::out_k_in, mlx_zero_taps(params)), l, input, "input", weight, "weight", output,
      "output", stream);
}

void conv_general(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                  const ConvGeneralParams& params) {
  conv_general(input, weight, output, params, default_cpu_stream());
}

Shape5 conv_transpose3d_output_shape(const Shape5& input, const Shape5& weight, const ConvTransposeParams& params) {
  return detail::lower_conv_transpose3d("conv_transpose3d", input, weight, params).result_shape;
}

void conv_transpose3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                      const ConvTransposeParams& params, const Stream& stream) {
  const Checker c{"conv_transpose3d"};
  c.dtype(input.dtype, "input");
  c.dtype(weight.dtype, "weight");
  const LoweredGeometry l = detail::lower_conv_transpose3d(c.op, input.shape, weight.shape, params);
  run(c, data_problem(WeightLayout::out_k_in, detail::ZeroTaps::skipped), l, input, "input", weight, "weight",
      output, "output", stream);
}

void conv_transpose3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                      const ConvTransposeParams& params) {
  conv_transpose3d(input, weight, output, params, default_cpu_stream());
}

Shape5 conv3d_grad_input_output_shape(const Shape5& grad_output, const Shape5& weight, const Shape5& input,
                                      const ConvParams& params) {
  return detail::lower_conv3d_grad_input("conv3d_grad_input", grad_output, weight, input, params).result_shape;
}

void conv3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight, const TensorView& grad_input,
                       const ConvParams& params, const Stream& stream) {
  const Checker c{"conv3d_grad_input"};
  const LoweredGeometry l = detail::lower_conv3d_grad_input(c.op, grad_output.shape, weight.shape, grad_input.shape, params);
  ConvProblem problem = data_problem(WeightLayout::in_k_out, detail::ZeroTaps::skipped);
  problem.fold = detail::PaddingFold{params.padding_mode, params.padding_lo, params.padding_hi};
  run(c, problem, l, grad_output, "grad_output", weight, "weight", grad_input, "grad_input", stream);
}

void conv3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight, const TensorView& grad_input,
                       const ConvParams& params) {
  conv3d_grad_input(grad_output, weight, grad_input, params, default_cpu_stream());
}

Shape5 conv3d_grad_weight_output_shape(const Shape5& input, const Shape5& grad_output, const Shape5& weight,
                                       const ConvParams& params) {
  return detail::lower_conv3d_grad_weight("conv3d_grad_weight", input, grad_output, weight, params).result_shape;
}

void conv3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                        const TensorView& grad_weight, const ConvParams& params, const Stream& stream) {
  const Checker c{"conv3d_grad_weight"};
  const LoweredGeometry l =
      detail::lower_conv3d_grad_weight(c.op, input.shape, grad_output.shape, grad_weight.shape, params);
  run(c, weight_grad_problem(detail::ZeroTaps::multiplied), l, input, "input", grad_output, "grad_output", grad_weight,
      "grad_weight", stream);
}

void conv3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                        const TensorView& grad_weight, const ConvParams& params) {
  conv3d_grad_weight(input, grad_output, grad_weight, params, default_cpu_stream());
}

void conv_transpose3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight,
                                 const TensorView& grad_input, const ConvTransposeParams& params,
                                 const Stream& stream) {
  const Checker c{"conv_transpose3d_grad_input"};
  const LoweredGeometry l =
      detail::lower_conv_transpose3d_grad_input(c.op, grad_output.shape, weight.shape, grad_input.shape, params);
  run(c, data_problem(WeightLayout::in_k_out, detail::ZeroTaps::multiplied), l, grad_output, "grad_output", weight,
      "weight", grad_input, "grad_input", stream);
}

void conv_transpose3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                                  const TensorView& grad_weight, const ConvTransposeParams& params,
                                  const Stream& stream) {
  const Checker c{"conv_transpose3d_grad_weight"};
  LoweredGeometry l = detail::lower_conv_transpose3d(c.op, input.shape, grad_weight.shape, params);
  detail::check_grad_output(c.op, grad_output.shape, l.result_shape);
  l.result_shape = grad_weight.shape;
  run(c, weight_grad_problem(detail::ZeroTaps::skipped), l, input, "input", grad_output, "grad_output", grad_weight,
      "grad_weight", stream);
}

void conv_general_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                              const TensorView& grad_weight, const ConvGeneralParams& params, const Stream& stream) {
  const Checker c{"conv_general_grad_weight"};
  LoweredGeometry l = detail::lower_conv_general(c.op, input.shape, grad_weight.shape, params);
  detail::check_grad_output(c.op, grad_output.shape, l.result_shape);
  l.result_shape = grad_weight.shape;
  run(c, weight_grad_problem(detail::ZeroTaps::skipped), l, input, "input", grad_output, "grad_output", grad_weight,
      "grad_weight", stream);
}

}  // namespace volconv
