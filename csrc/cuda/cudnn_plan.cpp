#include "cudnn_plan.h"

#include <algorithm>

#include "depthwise_plan.h"

namespace volconv::cuda_plan {
namespace {

using detail::ConvOp;
using detail::ConvProblemGeometry;
using detail::WeightLayout;

const char* kOnCpu = "; run it on the cpu (stream=volconv.cpu)";

bool all_one(const Int3& v) { return v[0] == 1 && v[1] == 1 && v[2] == 1; }

// The forward convolution x (in) -> y (out) with padding_lo lo along each
// axis, as cuDNN runs it: the symmetric padding max(lo, the high padding the
// last output needs), and the offset of our first output in cuDNN's. An
// offset that is not a whole number of strides cannot be expressed: "".
std::string fit(CudnnConv& c, const Int3& lo) {
  for (int i = 0; i < 3; ++i) {
    if (lo[i] < 0) return "The CUDA backend's cuDNN route cannot crop the input (negative padding)";
    const std::int64_t reach = c.dilation[i] * (c.kernel[i] - 1);  // last tap's offset
    // The last output reads up to (out-1)*stride - lo + reach; padding
    // beyond in-1 is what the high side needs.
    const std::int64_t hi = (c.out[i] - 1) * c.stride[i] - lo[i] + reach - (c.in[i] - 1);
    const std::int64_t p = std::max(lo[i], hi);
    if ((p - lo[i]) % c.stride[i] != 0)
      return "cuDNN pads both ends of an axis alike, and this padding (low " + std::to_string(lo[i]) +
             ", high " + std::to_string(hi) + " on axis " + std::to_string(i + 1) + ", stride " +
             std::to_string(c.stride[i]) + ") cannot be expressed that way";
    c.pad[i] = p;
    c.offset[i] = (p - lo[i]) / c.stride[i];
    c.out_full[i] = (c.in[i] + 2 * p - reach - 1) / c.stride[i] + 1;
  }
  return "";
}

// cuDNN's descriptors hold int sizes and counts: every tensor under 2^31 elements.
bool fits_int(const CudnnConv& c) {
  const std::int64_t lim = std::int64_t(1) << 31;
  auto vol = [](const Int3& s) { return s[0] * s[1] * s[2]; };
  const std::int64_t x = c.batch * vol(c.in), y = c.batch * vol(c.out_full), w = vol(c.kernel);
  if (x <= 0 || y <= 0) return true;  // empty: nothing is described
  return x < lim / c.in_channels && y < lim / c.out_channels &&
         w < lim / std::max<std::int64_t>(1, c.out_channels * (c.in_channels / c.groups)) &&
         c.pad[0] < lim && c.pad[1] < lim && c.pad[2] < lim;
}

}  // namespace

const char* route_name(CudaRoute r) {
  switch (r) {
    case CudaRoute::depthwise: return "depthwise";
    case CudaRoute::cudnn_forward: return "cudnn_forward";
    case CudaRoute::cudnn_backward_data: return "cudnn_backward_data";
    case CudaRoute::cudnn_backward_filter: return "cudnn_backward_filter";
    case CudaRoute::refused: break;
  }
  return "refused";
}

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
  CudnnConv& c = r.conv;
  c.batch = g.batch;
  c.groups = g.groups;
  c.kernel = g.kernel;
  c.dilation = g.kernel_dilation;
  const bool plain = all_one(g.input_dilation) && !g.flip;
  std::string why;
  if (plain && (op == ConvOp::weight_grad || layout == WeightLayout::out_k_in)) {
    // conv3d's forward or weight gradient: the problem is the forward conv.
    r.route = op == ConvOp::data ? CudaRoute::cudnn_forward : CudaRoute::cudnn_backward_filter;
    c.in = g.in;
    c.out = g.out;
    c.in_channels = g.in_channels;
    c.out_channels = g.out_channels;
    c.stride = g.stride;
    why = fit(c, g.padding_lo);
  } else if (op == ConvOp::data && layout == WeightLayout::in_k_out && g.flip && all_one(g.stride)) {
    // conv3d's input gradient: the forward conv ran result -> input with
    // stride = the input dilation and padding_lo = reach - our padding_lo.
    r.route = CudaRoute::cudnn_backward_data;
    c.in = g.out;
    c.out = g.in;
    c.in_channels = g.out_channels;
    c.out_channels = g.in_channels;
    c.stride = g.input_dilation;
    Int3 lo{};
    for (int i = 0; i < 3; ++i) lo[i] = g.kernel_dilation[i] * (g.kernel[i] - 1) - g.padding_lo[i];
    why = fit(c, lo);
  } else {
    r.route = CudaRoute::refused;
    r.refused =
        "The CUDA backend runs conv3d and its gradients (on cuDNN where not depthwise), but this problem "
        "(conv_transpose3d or conv_general with input dilation, flip or a transposed weight) is not one of them yet" +
        std::string(kOnCpu);
    return r;
  }
  if (why.empty() && !fits_int(c)) why = "cuDNN's descriptors count elements in 32-bit ints, and a tensor here has 2^31 or more";
  if (!why.empty()) {
    r.route = CudaRoute::refused;
    r.refused = why + kOnCpu;
  }
  return r;
}

}  // namespace volconv::cuda_plan
