// Launchers of the depthwise kernels (depthwise_kernels.cu): plain C++
// types, so the host code needs no kernel source.
#pragma once

#include <cstdint>

#include "depthwise_plan.h"

namespace volconv::cuda {

// One depthwise problem in the kernels' terms (csrc/core/conv_problem.h):
//   data:        y[o] = sum_k x_dilated[o*stride - pad + k*kdil] * w[flip ? K-1-k : k]
//   weight_grad: w[flip ? K-1-k : k] = sum_o x_dilated[o*stride - pad + k*kdil] * y[o]
// with x_dilated[j] = x[j / idil] when j % idil == 0 and inside x, else 0.
// Strides are in elements; x (N, in..., C), w (C, K..., 1), y (N, out..., C).
struct DwArgs {
  const void* x = nullptr;
  const void* w = nullptr;  // data: the weight read
  const void* y_in = nullptr;  // weight_grad: the output gradient read
  void* y_out = nullptr;  // data: the output written
  void* w_out = nullptr;  // weight_grad: the weight gradient written
  std::int64_t batch = 0, channels = 0;
  int in[3]{}, out[3]{}, kernel[3]{};
  int stride[3]{}, pad[3]{}, kdil[3]{}, idil[3]{};
  bool flip = false;
  // The zeros read outside the input meet the weight (conv3d: 0 * NaN = NaN
  // at the border, as torch) or are left out (the input gradient, the
  // transposed conv): the problem's ZeroTaps (depthwise_nonfinite.cuh).
  bool multiply_padding = true;
  std::int64_t xs[5]{}, ws[5]{}, ys[5]{};
};

enum class Elem { f32, f16, bf16 };

inline Elem elem_of(DType d) {
  return d == DType::float16 ? Elem::f16 : d == DType::bfloat16 ? Elem::bf16 : Elem::f32;
}

// Per storage type (depthwise_kernels_{f32,f16,bf16}.cu): queue the plan's
// kernels on `stream` (a cudaStream_t).
void launch_f32(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream);
void launch_f16(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream);
void launch_bf16(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream);

// Queue the plan's kernels on `stream` (a cudaStream_t). `partials` is
// plan.workspace_bytes of device memory (weight_grad only). Returns the
// launch error code (0 when none).
int launch_depthwise(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, Elem elem, float* partials,
                     void* stream);

// Whether the driver makes tensor maps for the GPU's bulk copies (the
// planner's bulk_copies).
bool bulk_copies_available();

}  // namespace volconv::cuda
