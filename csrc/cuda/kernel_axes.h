// The per-axis sizes every CUDA kernel's argument struct carries (DwArgs,
// DenseWgradFix, DenseDataFix), copied from a problem's geometry. Sizes
// reach the kernels as int: the host refuses a spatial size of 2^31 or more
// first (depthwise_host.cu).
#pragma once

#include "../core/conv_problem.h"

namespace volconv::cuda {

template <class Args>
void set_axes(const detail::ConvProblemGeometry& g, Args& a) {
  for (int i = 0; i < 3; ++i) {
    a.in[i] = int(g.in[i]);
    a.out[i] = int(g.out[i]);
    a.kernel[i] = int(g.kernel[i]);
    a.stride[i] = int(g.stride[i]);
    a.pad[i] = int(g.padding_lo[i]);
    a.kdil[i] = int(g.kernel_dilation[i]);
  }
}

// The axes plus what a data kernel also reads of the problem (DwArgs,
// DenseDataFix): input dilation, flip and the padding rule.
template <class Args>
void set_data_geometry(const detail::ConvProblem& problem, Args& a) {
  const detail::ConvProblemGeometry& g = problem.geometry;
  set_axes(g, a);
  for (int i = 0; i < 3; ++i) a.idil[i] = int(g.input_dilation[i]);
  a.flip = g.flip;
  a.multiply_padding = problem.zero_taps == detail::ZeroTaps::multiplied;
}

}  // namespace volconv::cuda
