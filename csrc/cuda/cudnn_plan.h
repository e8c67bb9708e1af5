// Which code runs a problem on a CUDA GPU: the depthwise kernels, or cuDNN
// (forward, backward data or backward filter of one forward convolution),
// and that convolution in cuDNN's terms. Plain C++ (no CUDA or cuDNN
// headers), built on every platform, so tests without a GPU ask it
// (tests/cpp/test_cuda_route.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "../core/conv_problem.h"

namespace volconv::cuda_plan {

enum class CudaRoute { depthwise, cudnn_forward, cudnn_backward_data, cudnn_backward_filter, refused };

// One forward convolution as cuDNN describes it: x (N, in..., C_in) ->
// y (N, out_full..., C_out), cross-correlation, the same padding `pad` at
// both ends of each axis. Our problem's forward output is the window
// y[offset : offset + out] of cuDNN's: cuDNN pads both ends alike, so an
// asymmetric padding computes a larger y and crops it (forward), or reads
// the output gradient placed in a zero y of cuDNN's size (the gradients).
struct CudnnConv {
  std::int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  Int3 in{}, kernel{}, out{}, out_full{}, offset{};
  Int3 pad{}, stride{1, 1, 1}, dilation{1, 1, 1};
  bool cropped() const { return out_full != out; }
};

struct CudaRouteChoice {
  CudaRoute route = CudaRoute::refused;
  CudnnConv conv;       // cudnn_* routes only
  std::string refused;  // refused: why, ending in where to run it instead
};

// The route of a problem: op, geometry and how the stored weight is read;
// fold_active when conv3d's input gradient must fold a padding mode other
// than zeros (ConvProblem::fold). Depthwise problems take the kernels;
// conv3d's forward, input gradient and weight gradient go to cuDNN (the
// input gradient is recognised as the flipped, input-dilated problem it
// lowers to); anything else, padding modes other than zeros, and sizes past
// cuDNN's 32-bit ints are refused.
CudaRouteChoice choose_route(detail::ConvOp op, const detail::ConvProblemGeometry& g, detail::WeightLayout layout,
                             bool fold_active);

}  // namespace volconv::cuda_plan
