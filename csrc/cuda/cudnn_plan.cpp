#include "cudnn_plan.h"

#include <algorithm>

#include "depthwise_plan.h"

namespace volconv::cuda_plan {
namespace {

using detail::ConvOp;
using detail::ConvProblemGeometry;
using detail::WeightLayout;

const char* const kOnCpu = "; run it on the cpu (stream=volconv.cpu)";

bool all_one(const Int3& v) { return v[0] == 1 && v[1] == 1 && v[2] == 1; }

std::string triple(const Int3& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + ")";
}

// Fills pad, offset and out_full of `c` (in, out, kernel, stride, dilation
// set) for a forward conv whose low padding is `lo`: the symmetric padding
// max(lo, the high padding the last output needs); our first output is then
// output `offset` of cuDNN's, which must be a whole number of strides.
// Returns "" or why it cannot be expressed.
std::string fit(CudnnConv& c, const Int3& lo) {
  for (int i = 0; i < 3; ++i) {
    if (lo[i] < 0) return "The CUDA backend's cuDNN route cannot crop the input (negative padding)";
    const std::int64_t reach = c.dilation[i] * (c.kernel[i] - 1);  // the last tap's offset
    // The last output reads up to (out-1)*stride - lo + reach.
    const std::int64_t hi = (c.out[i] - 1) * c.stride[i] - lo[i] + reach - (c.in[i] - 1);
    const std::int64_t p = std::max(lo[i], hi);
    if ((p - lo[i]) % c.stride[i] != 0)
      return "cuDNN pads both ends of an axis alike, and this padding (low " + std::to_string(lo[i]) + ", high " +
             std::to_string(hi) + " on axis " + std::to_string(i + 1) + ", stride " + std::to_string(c.stride[i]) +
             ") cannot be expressed that way";
    c.pad[i] = p;
    c.offset[i] = (p - lo[i]) / c.stride[i];
    c.out_full[i] = (c.in[i] + 2 * p - reach - 1) / c.stride[i] + 1;
  }
  return "";
}

// cuDNN's descriptors hold int sizes and strides: every tensor under 2^31 elements.
bool fits_int(const CudnnConv& c) {
  const std::int64_t lim = std::int64_t(1) << 31;
  auto vol = [](const Int3& s) { return s[0] * s[1] * s[2]; };
  const std::int64_t x = c.batch * vol(c.in), y = c.batch * vol(c.out_full), w = vol(c.kernel);
  return x < lim / std::max<std::int64_t>(1, c.in_channels) && y < lim / std::max<std::int64_t>(1, c.out_channels) &&
         w < lim / std::max<std::int64_t>(1, c.out_channels * (c.in_channels / c.groups));
}

// What both forms of a problem share.
CudnnConv common(const ConvProblemGeometry& g) {
  CudnnConv c;
  c.batch = g.batch;
  c.groups = g.groups;
  c.kernel = g.kernel;
  c.dilation = g.kernel_dilation;
  return c;
}

// The problem as cuDNN's forward conv (data) or its backward filter (weight
// gradient), without input dilation: the stored taps reversed when we flip,
// an in_k_out weight transposed within groups. route stays refused and
// `refused` says why when it cannot be expressed.
CudaRouteChoice as_forward(ConvOp op, const ConvProblemGeometry& g, WeightLayout layout) {
  CudaRouteChoice r;
  CudnnConv& c = r.conv = common(g);
  c.in = g.in;
  c.out = g.out;
  c.in_channels = g.in_channels;
  c.out_channels = g.out_channels;
  c.stride = g.stride;
  r.filter.swap_channels = op == ConvOp::data && layout == WeightLayout::in_k_out;
  r.filter.reverse_taps = g.flip;
  r.refused = fit(c, g.padding_lo);
  if (r.refused.empty()) r.route = op == ConvOp::data ? CudaRoute::cudnn_forward : CudaRoute::cudnn_backward_filter;
  return r;
}

// The problem as the transpose of cuDNN's forward conv from its output space
// to its input space (stride = our input dilation, low padding = reach - our
// padding_lo), at stride 1: backward data (data), or backward filter with
// the operands swapped (weight gradient). The taps in reverse order unless
// we flip; the weight transposed within groups unless stored so (in_k_out).
CudaRouteChoice as_transposed(ConvOp op, const ConvProblemGeometry& g, WeightLayout layout) {
  CudaRouteChoice r;
  CudnnConv& c = r.conv = common(g);
  c.in = g.out;
  c.out = g.in;
  c.in_channels = g.out_channels;
  c.out_channels = g.in_channels;
  c.stride = g.input_dilation;
  r.swap_operands = op == ConvOp::weight_grad;
  r.filter.swap_channels = op == ConvOp::weight_grad || layout == WeightLayout::out_k_in;
  r.filter.reverse_taps = !g.flip;
  Int3 lo{};
  for (int i = 0; i < 3; ++i) lo[i] = g.kernel_dilation[i] * (g.kernel[i] - 1) - g.padding_lo[i];
  r.refused = fit(c, lo);
  if (r.refused.empty())
    r.route = op == ConvOp::data ? CudaRoute::cudnn_backward_data : CudaRoute::cudnn_backward_filter;
  return r;
}

}  // namespace

CudaRouteChoice choose_route(ConvOp op, const ConvProblemGeometry& g, WeightLayout layout, bool fold_active) {
  CudaRouteChoice r;
  for (PaddingMode m : g.padding_mode)
    if (m != PaddingMode::zeros) fold_active = true;
  if (fold_active) {
    r.refused = std::string("The CUDA backend pads with zeros only for now") + kOnCpu;
    return r;
  }
  if (unsupported_reason(g).empty()) {
    r.route = CudaRoute::depthwise;
    return r;
  }
  // Without input dilation the problem is a forward conv; at stride 1 it is
  // the transpose of one; both at stride 1 without input dilation: the form
  // that reads the weight as stored (conv3d's input gradient: backward
  // data), else the forward one; either when the other cannot be expressed.
  const bool forward_form = all_one(g.input_dilation), transposed_form = all_one(g.stride);
  if (!forward_form && !transposed_form) {
    r.refused = "cuDNN runs a convolution with input dilation (conv_transpose3d, conv_general) only at stride 1, "
                "but got stride " +
                triple(g.stride) + " with input dilation " + triple(g.input_dilation) + kOnCpu;
    return r;
  }
  if (forward_form) r = as_forward(op, g, layout);
  if (transposed_form) {
    CudaRouteChoice t = as_transposed(op, g, layout);
    const bool better = r.route == CudaRoute::refused || (r.filter.any() && !t.filter.any());
    if (!forward_form || (t.route != CudaRoute::refused && better)) r = std::move(t);
  }
  if (r.route != CudaRoute::refused && !fits_int(r.conv)) {
    r.route = CudaRoute::refused;
    r.refused = "cuDNN's descriptors count elements in 32-bit ints, and a tensor here has 2^31 or more";
  }
  if (r.route == CudaRoute::refused) r.refused += kOnCpu;
  return r;
}

NonfiniteFix nonfinite_fix(const CudaRouteChoice& route, detail::ZeroTaps zero_taps) {
  switch (route.route) {
    case CudaRoute::cudnn_forward:
    case CudaRoute::cudnn_backward_data:
      return NonfiniteFix::weight_channels;
    case CudaRoute::cudnn_backward_filter:
      // Unswapped means the forward form: input dilation 1, zero padding.
      if (route.swap_operands) return NonfiniteFix::none;
      return zero_taps == detail::ZeroTaps::multiplied ? NonfiniteFix::padding_taps
                                                       : NonfiniteFix::padding_taps_recomputed;
    default:
      return NonfiniteFix::none;
  }
}

}  // namespace volconv::cuda_plan
