// The kernel arguments of a packed NDHWC depthwise problem with a 3x3x3
// kernel at stride 1 and padding 1 (the tiled kernels' case), shared by the
// micro-benchmarks; the caller sets the operands' pointers. Also the
// planner's geometry of the same problem.
#pragma once
#include <cstdint>

inline volconv::cuda::DwArgs depthwise_k3_args(int n, int d, int h, int w, int c, bool flip) {
  volconv::cuda::DwArgs a;
  a.batch = n;
  a.channels = c;
  const int in[3] = {d, h, w};
  for (int i = 0; i < 3; ++i) {
    a.in[i] = a.out[i] = in[i];
    a.kernel[i] = 3;
    a.stride[i] = 1;
    a.pad[i] = 1;
    a.kdil[i] = 1;
    a.idil[i] = 1;
  }
  a.flip = flip;
  const std::int64_t s[5] = {std::int64_t(d) * h * w * c, std::int64_t(h) * w * c, std::int64_t(w) * c, c, 1};
  for (int i = 0; i < 5; ++i) a.xs[i] = a.ys[i] = s[i];
  const std::int64_t ws[5] = {27, 9, 3, 1, 1};
  for (int i = 0; i < 5; ++i) a.ws[i] = ws[i];
  return a;
}

// (padding_lo alone set, as the benchmarks have always planned it.)
inline volconv::detail::ConvProblemGeometry depthwise_k3_geometry(int n, int d, int h, int w, int c) {
  volconv::detail::ConvProblemGeometry g{};
  g.batch = n;
  g.in = g.out = {d, h, w};
  g.kernel = {3, 3, 3};
  g.in_channels = g.out_channels = g.groups = c;
  g.padding_lo = {1, 1, 1};
  return g;
}
