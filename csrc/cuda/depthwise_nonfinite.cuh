// Where the depthwise kernels' fast paths would put a non-finite weight
// wrongly, and the exact outputs that replace theirs. The rule (the CPU's,
// conv_problem.h's ZeroTaps): conv3d multiplies the zeros it reads outside
// the input (0 * NaN = NaN reaches a border output, as in torch), its input
// gradient and the transposed conv leave them out (torch's scatter). The
// fast paths skip the padding along some axes and multiply the zeros along
// others (generic: skips; row3: skips D and H; tiled and pairs: skip D).
// The generic kernel follows the rule directly; row3, where its channels
// hold a non-finite weight, recomputes the outputs whose window reaches
// outside the input, one by one, by the rule. With finite weights both ways
// give the same sums (0 * w = 0), so nothing else changes. NOT YET for the
// tiled and pairs kernels: every in-kernel form tried (session 19, SASS
// only) made their march's step 1-10% longer (ptxas allocates the whole
// kernel at once), so they still break the rule (the strict xfails of
// tests/test_nonfinite_depthwise_devices.py). Included by depthwise_kernels.cuh after source(), load()
// and store().
#pragma once

namespace volconv::cuda {
namespace {

// Whether output (od, oh, ow) reads outside the input (padding or an
// inserted zero of the input dilation) at some tap.
__device__ __forceinline__ bool window_leaves_input(const DwArgs& a, int od, int oh, int ow) {
  const int o[3] = {od, oh, ow};
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < a.kernel[i]; ++k)
      if (source<true>(o[i], k, a.stride[i], a.pad[i], a.kdil[i], a.idil[i], a.in[i]) < 0) return true;
  return false;
}

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

}  // namespace
}  // namespace volconv::cuda
