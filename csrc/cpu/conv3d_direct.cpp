// The straightforward CPU convolution: weights packed once per call so the
// inner loop runs over contiguous output channels; inputs read in place
// through their strides, taps that fall in zero padding skipped (other
// padding modes read the input element padding_map.h names). No im2col.
// Correct for every geometry and dtype; the float64 path (true float64
// accumulation), where no fast kernel applies.
#include <type_traits>
#include <vector>

#include "../core/backend.h"
#include "../core/element.h"
#include "epilogue.h"
#include "../core/workspace.h"
#include "padding_map.h"

namespace volconv::cpu {
namespace {

template <class Acc, class In, class Wt, class Out>
void conv3d_direct_typed(const detail::ConvCall& call) {
  const ConvGeometry& g = call.geometry;
  const ConvParams& p = g.params;
  using InS = typename In::storage;
  using WS = typename Wt::storage;
  using OutS = typename Out::storage;
  const auto* x = static_cast<const InS*>(call.input.data);
  const auto* w = static_cast<const WS*>(call.weight.data);
  auto* y = static_cast<OutS*>(call.output.data);
  const Shape5& xs = call.input.strides;
  const Shape5& ws = call.weight.strides;
  const Shape5& ys = call.output.strides;
  const std::int64_t cin_g = g.in_channels_per_group, cout_g = g.out_channels_per_group;
  const std::int64_t taps = g.taps();

  // packed[group][tap][ci][co]: the output channels of a group are contiguous.
  std::vector<Acc> packed = detail::workspace<Acc>(std::size_t(g.out_channels * taps * cin_g), "the packed weights");
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t grp = co / cout_g, col = co % cout_g;
    for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw)
          for (std::int64_t ci = 0; ci < cin_g; ++ci) {
            const std::int64_t tap = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
            packed[std::size_t(((grp * taps + tap) * cin_g + ci) * cout_g + col)] = Wt::template load<Acc>(
                load_any(w + co * ws[0] + kd * ws[1] + kh * ws[2] + kw * ws[3] + ci * ws[4]));
          }
  }

  const EpilogueRun epi(call);
  const PaddingMap pad(g);
  std::vector<Acc> acc(static_cast<std::size_t>(cout_g));
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t od = 0; od < g.out[0]; ++od)
      for (std::int64_t oh = 0; oh < g.out[1]; ++oh)
        for (std::int64_t ow = 0; ow < g.out[2]; ++ow)
          for (std::int64_t grp = 0; grp < g.groups; ++grp) {
            std::fill(acc.begin(), acc.end(), Acc(0));
            for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
              std::int64_t id = od * p.stride[0] - p.padding_lo[0] + kd * p.dilation[0];
              if ((id = pad.source(0, id)) < 0) continue;
              for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
                std::int64_t ih = oh * p.stride[1] - p.padding_lo[1] + kh * p.dilation[1];
                if ((ih = pad.source(1, ih)) < 0) continue;
                for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
                  std::int64_t iw = ow * p.stride[2] - p.padding_lo[2] + kw * p.dilation[2];
                  if ((iw = pad.source(2, iw)) < 0) continue;
                  const InS* xr = x + n * xs[0] + id * xs[1] + ih * xs[2] + iw * xs[3] + grp * cin_g * xs[4];
                  const std::int64_t tap = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
                  const Acc* wp = packed.data() + (grp * taps + tap) * cin_g * cout_g;
                  for (std::int64_t ci = 0; ci < cin_g; ++ci) {
                    const Acc xv = In::template load<Acc>(load_any(xr + ci * xs[4]));
                    const Acc* wr = wp + ci * cout_g;
                    for (std::int64_t co = 0; co < cout_g; ++co) acc[std::size_t(co)] += xv * wr[co];
                  }
                }
              }
            }
            if (epi.active()) epi.apply(acc.data(), cout_g, grp * cout_g, epi.residual_offset(n, od, oh, ow));
            OutS* yr = y + n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3] + grp * cout_g * ys[4];
            for (std::int64_t co = 0; co < cout_g; ++co)
              store_any(yr + co * ys[4], Out::template store<Acc>(acc[std::size_t(co)]));
          }
}

}  // namespace

void conv3d_direct(const detail::ConvCall& call) {
  visit_dtype(call.input.dtype, [&](auto in) {
    visit_dtype(call.weight.dtype, [&](auto wt) {
      using In = decltype(in);
      using Wt = decltype(wt);
      // The output dtype is the promotion (checked by the core).
      using Out = Element<promote_types(In::dtype, Wt::dtype)>;
      using Acc = std::conditional_t<Out::dtype == DType::float64, double, float>;
      conv3d_direct_typed<Acc, In, Wt, Out>(call);
    });
  });
}

}  // namespace volconv::cpu
