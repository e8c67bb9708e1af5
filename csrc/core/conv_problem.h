// The one internal description every convolution op lowers to: a general
// convolution (MLX's conv_general: stride, padding, kernel dilation, input
// dilation, groups, flip) plus which operand is computed from which. Forward
// conv3d, conv_transpose3d and conv3d's input gradient are all `data` problems
// (they differ only in geometry and in how the stored weight is read); every
// weight gradient is a `weight_grad` problem. Backends see only this.
#pragma once

#include <cstdint>

#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv::detail {

enum class ConvOp {
  data,         // output = conv(input, weight)
  weight_grad,  // weight = d<output, conv(input, weight)>/d weight, output the gradient
};

// How the stored weight holds the logical weight Wl (C_out, K..., C_in/groups)
// of the problem (C_out = the output's channels, C_in = the input's).
enum class WeightLayout {
  out_k_in,  // stored == Wl
  // stored (C_in, K..., C_out/groups): Wl[g*Cog + o, k, c] = stored[g*Cig + c, k, o].
  // The input gradient of a forward conv reads the forward weight this way.
  in_k_out,
};

// Per spatial dimension (D, H, W), with the input dilated first:
//   out[o] = sum_k in_dilated[o*stride - padding_lo + k*kernel_dilation] * Wl[flip ? K-1-k : k]
//   in_dilated[j] = in[j / input_dilation] if j % input_dilation == 0 and the
//                   index is inside the input, else 0.
// padding_lo may be negative (the output starts inside the input: a crop).
// The output size is given, not derived, so that every direction's own size
// rule (output_padding, the forward input size) is the lowering's business.
struct ConvProblemGeometry {
  std::int64_t batch = 0;
  Int3 in{}, kernel{}, out{};
  std::int64_t in_channels = 0, out_channels = 0, groups = 1;
  Int3 stride{1, 1, 1}, padding_lo{0, 0, 0}, kernel_dilation{1, 1, 1}, input_dilation{1, 1, 1};
  bool flip = false;
  // What a read outside the input returns (zeros, or the element the mode
  // names: csrc/cpu/padding_map.h). Other modes only with input dilation 1
  // (conv3d's weight gradient reads its input as the forward pass does).
  PaddingModes padding_mode{PaddingMode::zeros, PaddingMode::zeros, PaddingMode::zeros};

  std::int64_t in_channels_per_group() const { return in_channels / groups; }
  std::int64_t out_channels_per_group() const { return out_channels / groups; }
};

// Where a non-finite weight (NaN, inf) meets the zeros a data problem reads
// outside the input (padding) or between its elements (input dilation).
enum class ZeroTaps {
  // As a conv over the zero-padded input: 0 * NaN reaches the output (conv3d,
  // the input gradient of a transposed conv, MLX's explicit-GEMM conv_general).
  // Used with input dilation 1 only.
  multiplied,
  // As a scatter: only real input elements meet a weight (torch's
  // conv_transpose3d and conv input gradient, MLX's slow conv_general).
  skipped,
};

// Bias and activation applied while the result is in registers: a slot the
// framework integration fills; no op uses it yet.
struct Epilogue {};

// conv3d's input gradient when the forward pass padded with a mode other
// than zeros: the problem computes the gradient of the unpadded positions;
// each padded position's gradient is then added to the input element it
// read (csrc/cpu/padding_fold.cpp). The forward conv's padding and modes.
struct PaddingFold {
  PaddingModes mode{PaddingMode::zeros, PaddingMode::zeros, PaddingMode::zeros};
  Int3 lo{0, 0, 0}, hi{0, 0, 0};
  bool active() const {
    for (int i = 0; i < 3; ++i)
      if (mode[i] != PaddingMode::zeros && (lo[i] > 0 || hi[i] > 0)) return true;
    return false;
  }
};

// Operands by role. `input` (N, in..., C_in) is always read. For `data`,
// `weight` is read and `result` is the output (N, out..., C_out); for
// `weight_grad`, `output` (N, out..., C_out) is read and `result` is the
// weight gradient, in the stored layout (out_k_in only).
struct ConvProblem {
  ConvOp op = ConvOp::data;
  ConvProblemGeometry geometry;
  WeightLayout weight_layout = WeightLayout::out_k_in;
  ConstTensorView input;
  ConstTensorView weight;
  ConstTensorView output;
  TensorView result;
  Epilogue epilogue;
  PaddingFold fold;  // data problems only
  // Data problems: a non-finite weight meets the zeros; weight gradients: a
  // non-finite grad_output element does (multiplied: conv3d's, as torch).
  ZeroTaps zero_taps = ZeroTaps::multiplied;
};

}  // namespace volconv::detail

namespace volconv::cpu {
// Runs a validated problem on the CPU (result non-empty, host memory).
void run_problem(const detail::ConvProblem& problem);
}  // namespace volconv::cpu

namespace volconv::metal {
// Runs a validated problem on Metal queue `queue` and waits for it: the
// dispatches of csrc/metal_plan/conv_training_plan.h (conv_training.mm).
// `op` names the user's op in messages. A build without Metal links a stub
// that throws (the core checks availability first).
void run_problem(const detail::ConvProblem& problem, const char* op, int queue);
}  // namespace volconv::metal

namespace volconv::cuda {
// Runs a validated depthwise problem on CUDA queue `queue` (csrc/cuda/
// depthwise_host.cu); anything else throws std::invalid_argument naming `op`.
void run_problem(const detail::ConvProblem& problem, const char* op, int queue);
}  // namespace volconv::cuda
