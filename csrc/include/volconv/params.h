// Convolution parameters and the validated problem geometry derived from them.
#pragma once

#include <array>
#include <cstdint>

#include "volconv/epilogue.h"
#include "volconv/padding_mode.h"
#include "volconv/tensor.h"

namespace volconv {

using Int3 = std::array<std::int64_t, 3>;

// Per-dimension values are ordered (D, H, W).
struct ConvParams {
  Int3 stride{1, 1, 1};
  Int3 padding_lo{0, 0, 0};
  Int3 padding_hi{0, 0, 0};
  Int3 dilation{1, 1, 1};
  std::int64_t groups = 1;
  // Bias, activation, residual (volconv/epilogue.h); none by default.
  Epilogue epilogue;
  // What the padding holds, per axis (volconv/padding_mode.h). Reflect needs
  // padding < the input size on its axis and circular <= (torch.nn.functional.
  // pad's rules). conv3d reads them on the CPU and in the Metal kernels; the
  // gradient ops on the CPU only (the GPU training kernels refuse them).
  PaddingModes padding_mode{PaddingMode::zeros, PaddingMode::zeros, PaddingMode::zeros};
};

// Every size of one conv3d call, checked for consistency and for 64-bit
// overflow. Built only by make_conv_geometry, so holding one means the call
// is valid.
struct ConvGeometry {
  std::int64_t batch = 0;                       // N
  Int3 in{};                                    // D, H, W
  std::int64_t in_channels = 0;                 // C_in
  Int3 kernel{};                                // KD, KH, KW
  std::int64_t out_channels = 0;                // C_out
  Int3 out{};                                   // Do, Ho, Wo
  std::int64_t groups = 1;
  std::int64_t in_channels_per_group = 0;       // C_in / groups
  std::int64_t out_channels_per_group = 0;      // C_out / groups
  ConvParams params;

  Shape5 output_shape() const { return {batch, out[0], out[1], out[2], out_channels}; }
  std::int64_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }  // KD*KH*KW
  // 2 * N*Do*Ho*Wo * C_out * KD*KH*KW * C_in/groups (as a double: can be huge).
  double flops() const;
};

// Validates shapes and parameters exactly as the Python API does and returns
// the geometry. Throws std::invalid_argument whose message starts "[conv3d]".
ConvGeometry make_conv_geometry(const Shape5& input_shape, const Shape5& weight_shape,
                                const ConvParams& params);

// Output shape (N, Do, Ho, Wo, C_out); validates like make_conv_geometry.
Shape5 conv3d_output_shape(const Shape5& input_shape, const Shape5& weight_shape,
                           const ConvParams& params);

// PyTorch's padding="same" for stride 1: total = dilation*(k-1), low half
// rounded down. Writes padding_lo/hi of `params` from the kernel shape.
void set_same_padding(ConvParams& params, const Int3& kernel);

}  // namespace volconv
