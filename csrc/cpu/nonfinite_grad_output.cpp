#include "nonfinite_grad_output.h"

#include <limits>
#include <vector>

#include "nonfinite_weights.h"
#include "problem_elements.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblemGeometry;

// Whether axis i reads a padding zero at tap k for output position o (input
// dilation 1: the other modes read real elements).
bool reads_zero(const ConvProblemGeometry& g, int i, std::int64_t o, std::int64_t k) {
  return g.padding_mode[i] == PaddingMode::zeros && problem_source(g, i, o, k) < 0;
}

// Whether any output position reads a padding zero at some tap.
bool reads_any_zero(const ConvProblemGeometry& g) {
  for (int i = 0; i < 3; ++i) {
    if (g.out[i] == 0) return false;
    if (axis_reads_padding_zero(g, i)) return true;
  }
  return false;
}

}  // namespace

void propagate_nonfinite_grad_output(const detail::ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  if (p.op != detail::ConvOp::weight_grad || p.zero_taps != detail::ZeroTaps::multiplied || g.flip) return;
  for (int i = 0; i < 3; ++i)
    if (g.input_dilation[i] != 1) return;
  if (!reads_any_zero(g) || !any_nonfinite(p.output)) return;
  const std::int64_t K[3] = {g.kernel[0], g.kernel[1], g.kernel[2]}, taps = K[0] * K[1] * K[2];
  // bad[co * taps + t]: tap t of output channel co met a zero times a
  // non-finite grad_output element.
  std::vector<char> bad(std::size_t(g.out_channels * taps), 0);
  const Shape5& ys = p.output.strides;
  const std::int64_t yes = std::int64_t(dtype_size(p.output.dtype));
  const char* y = static_cast<const char*>(p.output.data);
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (std::int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (std::int64_t o2 = 0; o2 < g.out[2]; ++o2)
          for (std::int64_t co = 0; co < g.out_channels; ++co) {
            const char* e = y + (n * ys[0] + o0 * ys[1] + o1 * ys[2] + o2 * ys[3] + co * ys[4]) * yes;
            if (!is_nonfinite(p.output.dtype, e)) continue;
            for (std::int64_t k0 = 0; k0 < K[0]; ++k0)
              for (std::int64_t k1 = 0; k1 < K[1]; ++k1)
                for (std::int64_t k2 = 0; k2 < K[2]; ++k2)
                  if (reads_zero(g, 0, o0, k0) || reads_zero(g, 1, o1, k1) || reads_zero(g, 2, o2, k2))
                    bad[std::size_t(co * taps + (k0 * K[1] + k1) * K[2] + k2)] = 1;
          }
  const Shape5& rs = p.result.strides;
  const std::int64_t res = std::int64_t(dtype_size(p.result.dtype));
  char* r = static_cast<char*>(p.result.data);
  for (std::int64_t co = 0; co < g.out_channels; ++co)
    for (std::int64_t t = 0; t < taps; ++t) {
      if (!bad[std::size_t(co * taps + t)]) continue;
      const std::int64_t k0 = t / (K[1] * K[2]), k1 = t / K[2] % K[1], k2 = t % K[2];
      for (std::int64_t c = 0; c < g.in_channels_per_group(); ++c)
        store_double(p.result.dtype, r + (co * rs[0] + k0 * rs[1] + k1 * rs[2] + k2 * rs[3] + c * rs[4]) * res,
                     std::numeric_limits<double>::quiet_NaN());
    }
}

}  // namespace volconv::cpu
