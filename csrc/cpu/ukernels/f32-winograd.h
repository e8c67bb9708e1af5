// Winograd F(2x2x2, 3x3x3) transforms (Lavin & Gray's F(2,3) along each
// axis), channels in the lanes. Between them the driver runs 64 GEMMs (one
// per transformed position) with the igemm kernels: 64 multiplies per 2x2x2
// outputs and input channel instead of 8 x 27 = 216.
//   input:  u = B^T d B per axis, rows t0 = d0 - d2, t1 = d1 + d2,
//           t2 = d2 - d1, t3 = d1 - d3;
//   output: y0 = m0 + m1 + m2, y1 = m1 - m2 - m3 per axis.
// (The weight transform, G g G^T, runs once per call in weight_packing.cpp.)
// Each transform returns the sum of its results times zero: 0 when all are
// finite, NaN otherwise, so the driver can hand a tile with an inf or NaN
// to the direct path, whose NaN placement is torch's. Include only from a
// kernels-<isa>.cpp unit after its vec-<isa>.h.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

using volconv::cpu::WinogradInputParams;
using volconv::cpu::WinogradOutputParams;

// The four rows of B^T v along one axis, in place: v[0], v[s], v[2s], v[3s].
template <class Vec>
inline void winograd_bt(typename Vec::V* v, int s) {
  const typename Vec::V d0 = v[0], d1 = v[s], d2 = v[2 * s], d3 = v[3 * s];
  v[0] = d0 - d2;
  v[s] = d1 + d2;
  v[2 * s] = d2 - d1;
  v[3 * s] = d1 - d3;
}

// 64 input rows [a][b][c] (D, H, W of the 4x4x4 patch) -> 64 transformed
// rows, one vector of channels at a time (the tail masked).
template <class Vec>
float f32_winograd_input(const WinogradInputParams& p) {
  using V = typename Vec::V;
  V check = Vec::zero();
  const V zero = Vec::zero();
  for (std::int64_t c = 0; c < p.cin; c += Vec::L) {
    const int n = p.cin - c < Vec::L ? int(p.cin - c) : Vec::L;
    V v[64];
    for (int i = 0; i < 64; ++i) v[i] = n == Vec::L ? Vec::load(p.x[i] + c) : Vec::load_partial(p.x[i] + c, n);
    for (int i = 0; i < 64; i += 4) winograd_bt<Vec>(v + i, 1);  // along W
    for (int a = 0; a < 4; ++a)
      for (int cc = 0; cc < 4; ++cc) winograd_bt<Vec>(v + 16 * a + cc, 4);  // along H
    for (int i = 0; i < 16; ++i) winograd_bt<Vec>(v + i, 16);  // along D
    for (int i = 0; i < 64; ++i) {
      check = check + v[i] * zero;
      if (n == Vec::L)
        Vec::store(p.u + i * p.u_step + c, v[i]);
      else
        Vec::store_partial(p.u + i * p.u_step + c, v[i], n);
    }
  }
  float lanes[Vec::L];
  Vec::store(lanes, check);
  float sum = 0.0f;
  for (float l : lanes) sum += l;
  return sum;
}

// The two rows of A^T along one axis: y0 = m0 + m1 + m2, y1 = m1 - m2 - m3.
template <class Vec>
inline void winograd_at(const typename Vec::V* m, int s, typename Vec::V* y, int ys) {
  y[0] = m[0] + m[s] + m[2 * s];
  y[ys] = m[s] - m[2 * s] - m[3 * s];
}

// 64 GEMM results (rows m + p * m_step, nr channels) -> the 2x2x2 outputs
// [dz][dy][dx], rows of y with stride nr.
template <class Vec>
float f32_winograd_output(const WinogradOutputParams& p) {
  using V = typename Vec::V;
  V check = Vec::zero();
  const V zero = Vec::zero();
  for (int c = 0; c < p.nr; c += Vec::L) {
    V m[64], w[32], h[16], d[8];
    for (int i = 0; i < 64; ++i) m[i] = Vec::load(p.m + i * p.m_step + c);
    for (int i = 0; i < 16; ++i) winograd_at<Vec>(m + 4 * i, 1, w + 2 * i, 1);  // along W: [a][b][x]
    for (int a = 0; a < 4; ++a)
      for (int x = 0; x < 2; ++x) winograd_at<Vec>(w + 8 * a + x, 2, h + 4 * a + x, 2);  // along H: [a][y][x]
    for (int i = 0; i < 4; ++i) winograd_at<Vec>(h + i, 4, d + i, 4);  // along D: [z][y][x]
    for (int i = 0; i < 8; ++i) {
      check = check + d[i] * zero;
      Vec::store(p.y + i * p.nr + c, d[i]);
    }
  }
  float lanes[Vec::L];
  Vec::store(lanes, check);
  float sum = 0.0f;
  for (float l : lanes) sum += l;
  return sum;
}

}  // namespace
