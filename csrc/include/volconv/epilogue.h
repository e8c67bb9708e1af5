// The fused epilogue of conv3d: y = act(conv + bias) + residual, computed on
// each output tile before it is stored (no extra pass over the output).
#pragma once

#include <cstdint>
#include <optional>

#include "volconv/tensor.h"

namespace volconv {

enum class Activation : std::uint8_t {
  none = 0,
  relu = 1,       // max(x, 0) (NaN stays NaN)
  silu = 2,       // x / (1 + exp(-x))
  gelu_tanh = 3,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
};

// "none", "relu", "silu", "gelu_tanh".
const char* activation_name(Activation activation);

// A read-only 1-D view (the bias): `size` elements `stride` apart.
struct ConstVectorView {
  const void* data = nullptr;
  DType dtype = DType::float32;
  std::int64_t size = 0;
  std::int64_t stride = 1;
};

// Applied in this order, in float32 (float64 for a float64 output), before
// the result is rounded to the output dtype:
//   bias (C_out,), any float dtype, converted on read;
//   activation;
//   residual, the output's shape and dtype, any strides; it may not overlap
//   the output (an in-place "y += conv" is not supported yet).
// The CPU and the Metal kernels (every conv3d kernel family, while the tile
// is in registers; emulator-verified, never run on a Mac) apply it; the
// training ops take none.
struct Epilogue {
  std::optional<ConstVectorView> bias;
  Activation activation = Activation::none;
  std::optional<ConstTensorView> residual;

  bool empty() const { return !bias && activation == Activation::none && !residual; }
};

// The backward of the epilogue's activation, for frameworks that
// differentiate conv3d's fused epilogue (recomputing the pre-activation `pre`
// with conv3d and the bias alone): grad_pre = grad * activation'(pre),
// elementwise over three 5-D views of one shape (any strides and float
// dtypes; grad_pre may not overlap the others), computed in float32 (float64
// when any view is float64) on the CPU's threads. The formulas are PyTorch's
// (silu_backward, gelu_backward with approximate="tanh"); relu's is
// threshold_backward's: 0 where pre <= 0, else grad (a NaN pre passes grad).
// Activation::none copies grad. Invalid views throw std::invalid_argument.
void activation_backward(Activation activation, const ConstTensorView& pre, const ConstTensorView& grad,
                         const TensorView& grad_pre);

// Its forward: out = activation(pre) + residual (residual optional), as the
// fused epilogue computes it (float32, float64 when any view is float64),
// for frameworks that keep the pre-activation (conv3d with the bias alone)
// for the backward instead of recomputing it. Same view rules.
void activation_forward(Activation activation, const ConstTensorView& pre,
                        const std::optional<ConstTensorView>& residual, const TensorView& out);

}  // namespace volconv
