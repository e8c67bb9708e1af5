// The cuDNN route by the padding rule (conv_problem.h's ZeroTaps, the
// CPU's): where a non-finite value meets the zeros a problem reads (padding,
// or between the elements of a dilated input), cuDNN's engines multiply or
// skip as they are built, not as the op asks (session 20,
// tests/cuda/dense_nonfinite_probe.py on the H200):
// - weight gradient: the deterministic float32 engine volconv keeps left the
//   padding's products out (64 NaN against the rule's and torch's 288);
//   under the skip rule (conv_general's, a stride-1 transposed conv's) the
//   engines multiplied them instead (session 21: 576 NaN against 208);
// - data problems: the 16-bit input gradient and the transposed conv in
//   every dtype multiplied the padding (426 NaN against the rule's 191),
//   and the float16 forward lost the -inf outputs of a -inf weight.
// So after cuDNN a fix-up kernel redoes what the rule decides. Plain C++
// types, so the host needs no kernel source.
#pragma once

#include <cstdint>

#include "depthwise_kernels.h"  // Elem

namespace volconv::cuda {

// A weight gradient dw (C_out, K..., C_in/groups) of input x (N, in...,
// C_in) and output gradient gy (N, out..., C_out), stride / pad / kdil as
// the forward conv's, input dilation 1, zero padding. Strides in elements.
struct DenseWgradFix {
  const void* x = nullptr;  // read only when `recompute`
  const void* gy = nullptr;
  void* dw = nullptr;
  std::int64_t batch = 0, out_channels = 0, in_channels_per_group = 0, groups = 1;
  int in[3]{}, out[3]{}, kernel[3]{}, stride[3]{}, pad[3]{}, kdil[3]{};
  bool flip = false;       // stored tap k is the sum's tap K-1-k
  bool recompute = false;  // the skip rule: redo the sums (else: NaN, the multiply rule)
  std::int64_t xs[5]{}, gys[5]{}, dws[5]{};
};

// Queues on `stream` (a cudaStream_t) the kernel that finds the taps that
// read padding at a non-finite output-gradient element and sets their sums
// to NaN (the multiply rule) or recomputes them over real elements only, in
// float32 (the skip rule: one thread redoes a tap's C_in/groups sums over
// every output position, so this costs O(positions x C_in/groups) a tap
// touched, and nothing more where the border's gradients are finite). It
// reads only the output-gradient elements whose window leaves the input,
// and is not launched where no window does. Returns the launch error code
// (0 when none).
int launch_dense_wgrad_nonfinite_fix(const DenseWgradFix& f, Elem elem, void* stream);

// A data problem (conv_problem.h's definition): y (N, out..., C_out) from x
// (N, in..., C_in) and the stored weight w, read as the layout says.
struct DenseDataFix {
  const void* x = nullptr;
  const void* w = nullptr;
  void* y = nullptr;
  std::int64_t batch = 0, in_channels = 0, out_channels = 0, groups = 1;
  int in[3]{}, out[3]{}, kernel[3]{}, stride[3]{}, pad[3]{}, kdil[3]{}, idil[3]{};
  bool flip = false;
  bool in_k_out = false;          // stored (C_in, K..., C_out/groups)
  bool multiply_padding = false;  // ZeroTaps::multiplied (input dilation 1 only)
  std::int64_t xs[5]{}, ws[5]{}, ys[5]{};
};

// Queues the kernel that recomputes, by the rule and in float32, every
// output of the output channels whose weights hold a NaN or inf; each block
// reads 1024 of the weight's elements and returns if they are finite. Not
// launched where no window reads a zero. Returns the launch error code (0
// when none).
int launch_dense_data_nonfinite_fix(const DenseDataFix& f, Elem elem, void* stream);

}  // namespace volconv::cuda
