// The cuDNN route's weight gradient by the padding rule (conv_problem.h's
// ZeroTaps::multiplied, the CPU's and torch's): a NaN / inf output-gradient
// element whose window reaches the zero padding makes the gradient of every
// tap that reads padding there NaN (0 * inf = NaN). cuDNN's engines differ:
// the deterministic float32 engine volconv keeps for weight gradients left
// those products out on the H200 (session 20: 64 NaN against the rule's 288
// in .devtmp/s20_dense_probe.py's case; torch's engine had 288). Plain C++
// types, so the host needs no kernel source.
#pragma once

#include <cstdint>

#include "depthwise_kernels.h"  // Elem

namespace volconv::cuda {

// conv3d's weight gradient dw (C_out, K..., C_in/groups) of output gradient
// gy (N, out..., C_out), stride / pad / kdil as the forward conv's, input
// dilation 1, zero padding. Strides in elements.
struct DenseWgradFix {
  const void* gy = nullptr;
  void* dw = nullptr;
  std::int64_t batch = 0, out_channels = 0, in_channels_per_group = 0;
  int in[3]{}, out[3]{}, kernel[3]{}, stride[3]{}, pad[3]{}, kdil[3]{};
  bool flip = false;  // stored tap k is the sum's tap K-1-k
  std::int64_t gys[5]{}, dws[5]{};
};

// Whether some window of the problem reads padding (else nothing to do).
bool reads_padding(const DenseWgradFix& f);

// Queues on `stream` (a cudaStream_t) the kernel that sets those taps' sums
// to NaN; it reads only the output-gradient elements whose window leaves
// the input. Returns the launch error code (0 when none).
int launch_dense_wgrad_nonfinite_fix(const DenseWgradFix& f, Elem elem, void* stream);

}  // namespace volconv::cuda
