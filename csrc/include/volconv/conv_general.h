// The ops beside conv3d, all one general convolution underneath:
// conv_general, conv_transpose3d and conv3d's two gradients. Semantics and
// messages as MLX's ops of the same names ("[conv_transpose3d] ..."), with
// PyTorch's rules where the two differ (see README). Like conv3d, each writes
// into a caller-allocated output whose shape the matching *_output_shape
// helper returns (it validates exactly as the op does), throws
// std::invalid_argument for bad arguments before any work, and runs on the
// stream's device (no stream: the CPU; a GPU stream runs the Metal kernels).
#pragma once

#include "volconv/device.h"
#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv {

// mlx.core.conv_general in 3-D. Per spatial dimension the input is first
// dilated (input_dilation - 1 zeros between elements), then padded, then
// correlated with the kernel dilated by kernel_dilation (convolved, i.e. the
// kernel reversed, when flip). Padding is non-negative.
struct ConvGeneralParams {
  Int3 stride{1, 1, 1};
  Int3 padding_lo{0, 0, 0};
  Int3 padding_hi{0, 0, 0};
  Int3 kernel_dilation{1, 1, 1};
  Int3 input_dilation{1, 1, 1};
  std::int64_t groups = 1;
  bool flip = false;
};

// conv_transpose3d's parameters, as PyTorch's: output size per dimension
// (D - 1) * stride - padding_lo - padding_hi + dilation * (K - 1) + output_padding + 1,
// output_padding < max(stride, dilation); padding beyond dilation * (K - 1) crops.
struct ConvTransposeParams {
  Int3 stride{1, 1, 1};
  Int3 padding_lo{0, 0, 0};
  Int3 padding_hi{0, 0, 0};
  Int3 dilation{1, 1, 1};
  Int3 output_padding{0, 0, 0};
  std::int64_t groups = 1;
};

// input (N, D, H, W, C_in), weight (C_out, KD, KH, KW, C_in / groups).
Shape5 conv_general_output_shape(const Shape5& input_shape, const Shape5& weight_shape,
                                 const ConvGeneralParams& params);
void conv_general(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                  const ConvGeneralParams& params, const Stream& stream);
void conv_general(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                  const ConvGeneralParams& params);

// input (N, D, H, W, C_in), weight (C_out, KD, KH, KW, C_in / groups) as MLX
// (PyTorch's torch_w[g*Cin_g + c, o, k...] is weight[g*Cout_g + o, k..., c]).
Shape5 conv_transpose3d_output_shape(const Shape5& input_shape, const Shape5& weight_shape,
                                     const ConvTransposeParams& params);
void conv_transpose3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                      const ConvTransposeParams& params, const Stream& stream);
void conv_transpose3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                      const ConvTransposeParams& params);

// conv3d's vector-Jacobian products for y = conv3d(x, w, params): params and
// shapes mean what they mean for conv3d. grad_input has the input's shape and
// dtype promote(grad_output, weight); grad_weight the weight's shape and
// dtype promote(input, grad_output). The helpers check that grad_output has
// conv3d's output shape.
Shape5 conv3d_grad_input_output_shape(const Shape5& grad_output_shape, const Shape5& weight_shape,
                                      const Shape5& input_shape, const ConvParams& params);
void conv3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight,
                       const TensorView& grad_input, const ConvParams& params, const Stream& stream);
void conv3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight,
                       const TensorView& grad_input, const ConvParams& params);

Shape5 conv3d_grad_weight_output_shape(const Shape5& input_shape, const Shape5& grad_output_shape,
                                       const Shape5& weight_shape, const ConvParams& params);
void conv3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                        const TensorView& grad_weight, const ConvParams& params, const Stream& stream);
void conv3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                        const TensorView& grad_weight, const ConvParams& params);

// The gradients that make conv_transpose3d and conv_general differentiable
// (for the framework wrappers): same rules, messages name the op.
// conv_transpose3d's input gradient: grad_input of x's shape, dtype
// promote(grad_output, weight).
void conv_transpose3d_grad_input(const ConstTensorView& grad_output, const ConstTensorView& weight,
                                 const TensorView& grad_input, const ConvTransposeParams& params,
                                 const Stream& stream);
// conv_transpose3d's and conv_general's weight gradients: dtype promote(input, grad_output).
void conv_transpose3d_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                                  const TensorView& grad_weight, const ConvTransposeParams& params,
                                  const Stream& stream);
void conv_general_grad_weight(const ConstTensorView& input, const ConstTensorView& grad_output,
                              const TensorView& grad_weight, const ConvGeneralParams& params,
                              const Stream& stream);

}  // namespace volconv
