// Where the depthwise kernels' fast paths would put a non-finite weight
// wrongly, and the exact outputs that replace theirs. The rule (the CPU's,
// conv_problem.h's ZeroTaps): conv3d multiplies the zeros it reads outside
// the input (0 * NaN = NaN reaches a border output, as in torch), its input
// gradient and the transposed conv leave them out (torch's scatter). The
// fast paths skip the padding along some axes and multiply the zeros along
// others (generic: skips; row3: skips D and H; tiled and pairs: skip D).
// The generic kernel follows the rule directly. After the others a small
// kernel (dw_data_nonfinite_fix) recomputes, for channels holding a
// non-finite weight, the outputs whose window reaches outside the input, one
// by one, by the rule; with finite weights both ways give the same sums
// (0 * w = 0), so nothing else changes. A separate kernel, not code in
// theirs: every in-kernel form tried (session 19, SASS only) made the tiled
// and pairs kernels' step 1-10% longer (ptxas allocates a kernel at once).
// Included by depthwise_kernels.cuh.
#pragma once

#include "depthwise_kernels.h"
#include "elements.cuh"
#include "padding_band.cuh"

namespace volconv::cuda {
namespace {

// Output (n, od, oh, ow) of channel c by the rule, every tap in order.
template <class T, class I>
__device__ float exact_output(const DwArgs& a, std::int64_t n, int od, int oh, int ow, std::int64_t c) {
  const T* x = static_cast<const T*>(a.x) + I(n) * I(a.xs[0]) + I(c) * I(a.xs[4]);
  const T* w = static_cast<const T*>(a.w) + I(c) * I(a.ws[0]);
  const int taps = a.kernel[0] * a.kernel[1] * a.kernel[2];
  float acc = 0.f;
  for (int kd = 0; kd < a.kernel[0]; ++kd) {
    const int id = source<true>(od, kd, a.stride[0], a.pad[0], a.kdil[0], a.idil[0], a.in[0]);
    for (int kh = 0; kh < a.kernel[1]; ++kh) {
      const int ih = source<true>(oh, kh, a.stride[1], a.pad[1], a.kdil[1], a.idil[1], a.in[1]);
      for (int kw = 0; kw < a.kernel[2]; ++kw) {
        const int iw = source<true>(ow, kw, a.stride[2], a.pad[2], a.kdil[2], a.idil[2], a.in[2]);
        int tap = (kd * a.kernel[1] + kh) * a.kernel[2] + kw;
        if (a.flip) tap = taps - 1 - tap;
        const float wv = load(w + I(tap / (a.kernel[1] * a.kernel[2])) * I(a.ws[1]) +
                              I(tap / a.kernel[2] % a.kernel[1]) * I(a.ws[2]) + I(tap % a.kernel[2]) * I(a.ws[3]));
        if (id >= 0 && ih >= 0 && iw >= 0)
          acc += load(x + I(id) * I(a.xs[1]) + I(ih) * I(a.xs[2]) + I(iw) * I(a.xs[3])) * wv;
        else if (a.multiply_padding)
          acc += 0.f * wv;
      }
    }
  }
  return acc;
}

template <class T, class I>
__device__ __forceinline__ void store_exact_output(const DwArgs& a, std::int64_t n, int od, int oh, int ow,
                                                   std::int64_t c) {
  store(static_cast<T*>(a.y_out) + I(n) * I(a.ys[0]) + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) +
            I(ow) * I(a.ys[3]) + I(c) * I(a.ys[4]),
        exact_output<T, I>(a, n, od, oh, ow, c));
}

// Whether any of channel c's weights is NaN or infinite (false past the channels).
template <class T, class I>
__device__ bool weights_nonfinite(const DwArgs& a, std::int64_t c) {
  if (c >= a.channels) return false;
  const T* w = static_cast<const T*>(a.w) + I(c) * I(a.ws[0]);
  bool bad = false;
  for (int kd = 0; kd < a.kernel[0]; ++kd)
    for (int kh = 0; kh < a.kernel[1]; ++kh)
      for (int kw = 0; kw < a.kernel[2]; ++kw)
        bad |= !isfinite(load(w + I(kd) * I(a.ws[1]) + I(kh) * I(a.ws[2]) + I(kw) * I(a.ws[3])));
  return bad;
}

// Programmatic dependent launch (sm_90): the march kernels let the fix-up
// grid be scheduled as soon as all their blocks run, and the fix-up reads
// the weights (which the march does not write) before it waits for the
// march's outputs. So for finite weights it costs no launch gap in the
// stream (session 20, tiled_bench: +4.6 us a call on the small shape with a
// plain launch). Both instructions do nothing in a grid launched without it.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_primary_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Block: 32 channels (lanes) x 8 rows; grid.x = channel blocks. See
// launch_nonfinite_fix (depthwise_kernels.cuh). Input dilation 1 (the row3,
// tiled and pairs kernels' problems).
template <class T, class I>
__global__ void __launch_bounds__(256) dw_data_nonfinite_fix(DwArgs a) {
  const std::int64_t c = std::int64_t(blockIdx.x) * 32 + threadIdx.x;
  const bool bad = threadIdx.y == 0 && weights_nonfinite<T, I>(a, c);
  __shared__ bool lane_bad[32];
  if (threadIdx.y == 0) lane_bad[threadIdx.x] = bad;
  const bool any_bad = __syncthreads_or(bad);
  // Every thread waits, found or not: this grid then ends after the march,
  // so whatever the stream runs next sees the march's outputs.
  wait_for_primary_grid();
  if (!any_bad || !lane_bad[threadIdx.x]) return;  // (no barrier below)
  int first[3], last[3];
  for (int i = 0; i < 3; ++i)
    inside_band(a.out[i], a.in[i], a.kernel[i], a.stride[i], a.pad[i], a.kdil[i], first[i], last[i]);
  const std::int64_t lines = a.batch * a.out[0] * a.out[1];
  for (std::int64_t line = threadIdx.y; line < lines; line += blockDim.y) {
    const int oh = int(line % a.out[1]);
    const std::int64_t r = line / a.out[1];
    const int od = int(r % a.out[0]);
    const std::int64_t n = r / a.out[0];
    const bool whole = od < first[0] || od >= last[0] || oh < first[1] || oh >= last[1];
    for (int ow = 0; ow < a.out[2]; ++ow) {
      if (!whole && ow == first[2]) ow = last[2];  // skip the inside of the line
      if (ow >= a.out[2]) break;
      store_exact_output<T, I>(a, n, od, oh, ow, c);
    }
  }
}

}  // namespace
}  // namespace volconv::cuda
