// Scalar access to a ConvProblem's elements for the non-finite passes
// (nonfinite_scatter.cpp, nonfinite_grad_output.cpp): the rare, exact
// corrections that run after the vector kernels, in double.
#pragma once

#include <cstdint>

#include "../core/conv_problem.h"
#include "../core/element.h"

namespace volconv::cpu {

// The input index output o reads through tap k along dimension i, or -1
// where it reads padding or an inserted zero (conv_problem.h's formula; the
// padding mode is not applied).
inline std::int64_t problem_source(const detail::ConvProblemGeometry& g, int i, std::int64_t o, std::int64_t k) {
  const std::int64_t j = o * g.stride[i] - g.padding_lo[i] + k * g.kernel_dilation[i];
  if (j < 0 || j % g.input_dilation[i] != 0) return -1;
  return j / g.input_dilation[i] < g.in[i] ? j / g.input_dilation[i] : -1;
}

// Whether some output reads a zero of the padding along axis i (input
// dilation 1; the other padding modes read real elements). Reads grow with
// the output and the tap, so the first and the last read say it.
inline bool axis_reads_padding_zero(const detail::ConvProblemGeometry& g, int i) {
  if (g.out[i] == 0 || g.padding_mode[i] != PaddingMode::zeros) return false;
  return problem_source(g, i, 0, 0) < 0 || problem_source(g, i, g.out[i] - 1, g.kernel[i] - 1) < 0;
}

inline double load_double(DType dtype, const char* p) {
  return visit_dtype(dtype, [&](auto e) {
    using E = decltype(e);
    return E::template load<double>(load_any(reinterpret_cast<const typename E::storage*>(p)));
  });
}

inline void store_double(DType dtype, char* p, double v) {
  visit_dtype(dtype, [&](auto e) {
    using E = decltype(e);
    store_any(reinterpret_cast<typename E::storage*>(p), E::template store<double>(v));
  });
}

}  // namespace volconv::cpu
