// Which code runs a problem on a CUDA GPU: the depthwise kernels, or cuDNN
// (forward, backward data or backward filter of one forward convolution),
// and that convolution in cuDNN's terms. Plain C++ (no CUDA or cuDNN
// headers), built on every platform, so tests without a GPU ask it
// (tests/cpp/test_cuda_route.cpp).
#pragma once

#include <array>
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

// Whether a cuDNN call of `route` takes deterministic engines first:
// always for a weight gradient (bit-identical run to run, as the depthwise
// kernels' fixed reduction order is), else only when the process asked for
// it (volconv.set_cuda_deterministic). Otherwise the fastest engine wins, as
// in torch with cudnn.deterministic off: on the H200 the dense float32
// conv_transpose3d (k2 s2) ran 0.80 ms on the fastest deterministic engine
// against 0.28 ms on torch's, an engine cuDNN notes as nondeterministic.
constexpr bool deterministic_engines(CudaRoute route, bool asked) {
  return asked || route == CudaRoute::cudnn_backward_filter;
}

// A cuDNN call's cache key by value: route, dtype, device, the conv's sizes
// and whether deterministic engines came first, in the first kConvKeyFields
// entries; a caller with more to tell problems apart (the graph API's
// alignments) fills the entries after them.
constexpr std::size_t kConvKeyFields = 26;
template <std::size_t N>
std::array<std::int64_t, N> conv_key(CudaRoute route, DType dt, int device, const CudnnConv& c, bool deterministic) {
  static_assert(N >= kConvKeyFields, "the key holds the conv's sizes");
  std::array<std::int64_t, N> k{std::int64_t(route), std::int64_t(dt), device, c.batch, c.in_channels,
                                c.out_channels, c.groups};
  k[25] = deterministic;
  for (int i = 0; i < 3; ++i) {
    k[std::size_t(7 + i)] = c.in[i];
    k[std::size_t(10 + i)] = c.kernel[i];
    k[std::size_t(13 + i)] = c.out_full[i];
    k[std::size_t(16 + i)] = c.pad[i];
    k[std::size_t(19 + i)] = c.stride[i];
    k[std::size_t(22 + i)] = c.dilation[i];
  }
  return k;
}

// How the stored weight (a data problem's operand, or a weight gradient's
// result) holds cuDNN's filter wF (C_out_F, K..., C_in_F/groups); the host
// rewrites one into the other (filter_transform.h) when either is set.
struct FilterMap {
  // Transposed within each group: stored[g*B + b, k, a] = wF[g*A + a, k, b]
  // (a transposed conv's weight is the weight of the forward conv whose
  // input gradient it is, read channels-swapped).
  bool swap_channels = false;
  bool reverse_taps = false;  // stored tap k is wF's tap K-1-k on every axis
  bool any() const { return swap_channels || reverse_taps; }
};

struct CudaRouteChoice {
  CudaRoute route = CudaRoute::refused;
  CudnnConv conv;       // cudnn_* routes only
  FilterMap filter;     // cudnn_* routes only
  // cudnn_backward_filter: the problem's output is cuDNN's x and its input
  // cuDNN's dy (the weight gradient of a transposed conv).
  bool swap_operands = false;
  std::string refused;  // refused: why, ending in where to run it instead
};

// The route of a problem: op, geometry and how the stored weight is read;
// fold_active when conv3d's input gradient must fold a padding mode other
// than zeros (ConvProblem::fold). Depthwise problems take the kernels; the
// others go to cuDNN: without input dilation a data problem is a forward conv
// and a weight gradient that conv's backward filter; with input dilation (at
// stride 1: conv3d's input gradient, conv_transpose3d, conv_general) a data
// problem is the backward data of the forward conv from its output space to
// its input space, and a weight gradient that conv's backward filter with
// the operands swapped (where both apply, the form that reads the weight as
// stored; either, where the other cannot be expressed). The filter map says
// how the stored weight reads. Input dilation with a stride, padding modes other than zeros, crops cuDNN
// cannot express and sizes past its 32-bit ints are refused.
CudaRouteChoice choose_route(detail::ConvOp op, const detail::ConvProblemGeometry& g, detail::WeightLayout layout,
                             bool fold_active);

// Which fix-up kernel (dense_nonfinite.h) the host queues after cuDNN's call
// of `route`, so that non-finite values meet the zeros a problem reads by
// the padding rule (ZeroTaps) whatever cuDNN's engine does:
// - padding_taps: a weight gradient in the forward form (backward filter,
//   operands not swapped: input dilation 1, zero padding) under the multiply
//   rule (conv3d's): the deterministic float32 engine leaves the padding's
//   products out, so the taps that read padding at a non-finite output
//   gradient are set to NaN.
// - padding_taps_recomputed: the same form under the skip rule
//   (conv_general's weight gradient, a stride-1 transposed conv's): cuDNN
//   multiplied the padding there (session 21, one group: in 16 bits in one
//   run, in every dtype in the next, as its engine choice went), so those
//   taps' sums are recomputed over real elements only.
// - weight_channels: every data problem (forward and backward data): cuDNN's
//   16-bit engines and its transposed conv multiply or drop as built, so the
//   output channels whose weights hold a NaN or inf are recomputed.
// - none: the depthwise kernels (which follow the rule themselves), a
//   refused problem, and the swapped weight gradients (a strided transposed
//   conv's, conv_general's with input dilation: the skip rule), where
//   cuDNN's operand that meets its padding is the problem's input and every
//   engine tried left those products out (tests/test_nonfinite_dense_cuda.py).
// The launch then checks the sizes: nothing is queued where no window reads
// a zero.
enum class NonfiniteFix { none, padding_taps, padding_taps_recomputed, weight_channels };
NonfiniteFix nonfinite_fix(const CudaRouteChoice& route, detail::ZeroTaps zero_taps);

}  // namespace volconv::cuda_plan
