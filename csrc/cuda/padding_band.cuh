// Which outputs of one axis have windows that leave the input (read the
// zero padding): what the non-finite fix-ups (depthwise_nonfinite.cuh,
// dense_nonfinite.cu) check and visit.
#pragma once

namespace volconv::cuda {

// The outputs [first, last) of one axis whose windows stay inside the input
// (input dilation 1): outputs [0, first) read below it, [last, out) above.
__host__ __device__ inline void inside_band(int out, int in, int k, int stride, int pad, int kdil, int& first,
                                            int& last) {
  const int below = (pad + stride - 1) / stride;
  first = below < out ? below : out;
  // The last tap of output o reads o * stride - pad + (k - 1) * kdil < in.
  const int reach = in + pad - (k - 1) * kdil;  // o * stride < reach
  const int above = reach <= 0 ? 0 : (reach + stride - 1) / stride;
  last = above < out ? above : out;
  if (last < first) last = first;
}

// Whether some output's window along one axis reads a zero: the padding,
// past the input's end, or between the elements of a dilated input (what
// every non-finite fix-up checks before it is launched).
__host__ __device__ inline bool axis_reads_zeros(int out, int in, int k, int stride, int pad, int kdil, int idil) {
  const long long dilated = (long long)(in - 1) * idil + 1;
  return idil > 1 || pad > 0 || (long long)(out - 1) * stride - pad + (long long)(k - 1) * kdil >= dilated;
}

}  // namespace volconv::cuda
