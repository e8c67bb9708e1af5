// Winograd F(2x2x2, 3x3x3) for float32 3x3x3 convolutions at stride and
// dilation 1 (the planner's winograd path). The output is cut into 2x2x2
// tiles; a unit of work is a run of tiles of one group:
//   1. each tile's 4x4x4 input patch (through the padding mode's index map)
//      is transformed into 64 rows of C_in (f32-winograd.h) in U;
//   2. per NR block of output channels, 64 GEMMs U[p] x V[p] (one per
//      transformed position, the igemm kernel with one tap) fill M;
//   3. M is transformed back into the tiles' outputs, which get the epilogue
//      and are stored.
// That is 64 multiplies per 8 outputs and input channel instead of 216; the
// transforms add a few percent. Work units are fixed by the problem, and
// each output is computed by one fixed sequence, so results are the same for
// any thread count.
// An inf or NaN anywhere (input, transformed weight, or a result that
// overflowed) would spread across a tile, unlike a direct convolution's; the
// driver then returns false and conv3d runs the direct plan instead.
#include "conv3d_winograd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "conv_tile.h"
#include "epilogue.h"
#include "padding_map.h"
#include "thread_pool.h"
#include "weight_packing.h"

namespace volconv::cpu {
namespace {

struct Tiles {
  std::int64_t t[3];  // tiles along D, H, W
  std::int64_t per_image, total;
};

Tiles tile_grid(const ConvGeometry& g) {
  Tiles t{};
  for (int i = 0; i < 3; ++i) t.t[i] = (g.out[i] + 1) / 2;
  t.per_image = t.t[0] * t.t[1] * t.t[2];
  t.total = g.batch * t.per_image;
  return t;
}

// The input index that padded coordinate c (relative to the input's origin)
// reads along `axis`, or -1 for a zero: coordinates outside the padded
// extent belong only to a tile's outputs past the end, whose values are
// dropped (and F(2,3)'s y0 does not depend on d3, nor y1 on d0).
std::int64_t patch_source(const ConvGeometry& g, const PaddingMap& pad, int axis, std::int64_t c) {
  if (c >= 0 && c < g.in[axis]) return c;
  if (c < -g.params.padding_lo[axis] || c >= g.in[axis] + g.params.padding_hi[axis]) return -1;
  return pad.source(axis, c);
}

}  // namespace

std::int64_t winograd_unit_tiles(const ConvGeometry& g, int mr, std::int64_t u_bytes, int threads) {
  // U holds 64 rows of C_in floats per tile; whole MR groups, 1 to 8 of them.
  const std::int64_t cin = g.in_channels_per_group;
  std::int64_t groups_of_mr = std::clamp<std::int64_t>(u_bytes / (64 * cin * 4) / mr, 1, 8);
  // At least about four units per thread where the problem has the tiles
  // (8x8^3 x 64 on 16 Xeon threads: 22 units of 24 tiles left the last
  // round a third full).
  const std::int64_t tiles = g.groups * tile_grid(g).total, want = 4 * std::int64_t(std::max(threads, 1));
  while (groups_of_mr > 1 && tiles / (groups_of_mr * mr) < want) --groups_of_mr;
  return groups_of_mr * mr;
}

bool conv3d_winograd(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan,
                     const PrepackedWeights* prepacked) {
  const ConvGeometry& g = call.geometry;
  const IgemmKernel k = plan.igemm;
  const int MR = k.mr, NR = k.nr;
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + NR - 1) / NR, panel = 64 * cin * NR;
  const bool held = prepacked && prepacked->winograd && prepacked->isa == kt.isa && prepacked->nr == NR;
  bool finite = held ? prepacked->winograd_finite : true;
  std::vector<float> local;
  if (!held) {
    count_call_packing();
    local = pack_winograd_f32(g, call.weight, NR, finite);
  }
  if (!finite) return false;
  const std::vector<float>& V = held ? prepacked->winograd_f32 : local;

  const EpilogueRun epi(call);
  const OutputTarget out{static_cast<char*>(call.output.data), call.output.dtype,
                         std::int64_t(dtype_size(call.output.dtype)), call.output.strides, plan.stream};
  const Shape5& xs = call.input.strides;
  const auto* x0 = static_cast<const float*>(call.input.data);
  const Tiles grid = tile_grid(g);
  const std::int64_t TB = plan.unit_tiles, units_per_group = (grid.total + TB - 1) / TB;
  const PaddingMap pad(g);
  std::atomic<bool> bad{false};

  parallel_pieces(g.groups * units_per_group, 1, [&](Pieces& pieces) {
    std::vector<float> U(std::size_t(64 * TB * cin)), M(std::size_t(64 * TB * NR)), y(std::size_t(8 * NR));
    const std::vector<float> zero(std::size_t(cin), 0.0f);
    const float* patch[64];
    const void* a[kMaxMR];
    const std::int64_t w_off = 0;
    TileRows rows;
    std::int64_t begin = 0, end = 0;
    while (pieces.next(begin, end))
      for (std::int64_t unit = begin; unit < end && !bad.load(std::memory_order_relaxed); ++unit) {
        const std::int64_t grp = unit / units_per_group, t0 = unit % units_per_group * TB;
        const std::int64_t nt = std::min(TB, grid.total - t0);
        const float* xg = x0 + grp * cin;
        // 1. Input transform, tile by tile.
        float check = 0.0f;
        for (std::int64_t j = 0; j < nt; ++j) {
          std::int64_t r = t0 + j;
          const std::int64_t n = r / grid.per_image;
          r %= grid.per_image;
          const std::int64_t c0[3] = {r / (grid.t[1] * grid.t[2]) * 2 - g.params.padding_lo[0],
                                      r / grid.t[2] % grid.t[1] * 2 - g.params.padding_lo[1],
                                      r % grid.t[2] * 2 - g.params.padding_lo[2]};
          std::int64_t src[3][4];
          for (int ax = 0; ax < 3; ++ax)
            for (int i = 0; i < 4; ++i) src[ax][i] = patch_source(g, pad, ax, c0[ax] + i);
          for (int i = 0; i < 64; ++i) {
            const std::int64_t id = src[0][i >> 4], ih = src[1][(i >> 2) & 3], iw = src[2][i & 3];
            patch[i] = id < 0 || ih < 0 || iw < 0 ? zero.data() : xg + n * xs[0] + id * xs[1] + ih * xs[2] + iw * xs[3];
          }
          check += kt.winograd_input(WinogradInputParams{patch, cin, U.data() + j * cin, TB * cin});
        }
        if (!(check == 0.0f)) {
          bad.store(true);
          return;
        }
        for (std::int64_t blk = 0; blk < blocks; ++blk) {
          // 2. 64 GEMMs of nt x C_in by C_in x NR (rows past nt read zeros).
          const float* panel_blk = V.data() + (grp * blocks + blk) * panel;
          for (int p = 0; p < 64; ++p)
            for (std::int64_t j0 = 0; j0 < nt; j0 += MR) {
              for (int i = 0; i < MR; ++i)
                a[i] = j0 + i < nt ? static_cast<const void*>(U.data() + (p * TB + j0 + i) * cin) : zero.data();
              k.fn(IgemmParams{1, cin, a, &w_off, panel_blk + p * cin * NR, M.data() + (p * TB + j0) * NR, 0});
            }
          // 3. Output transform, epilogue and store, tile by tile.
          const std::int64_t chan0 = grp * cout + blk * NR;
          const int nc = int(std::min<std::int64_t>(NR, cout - blk * NR));
          for (std::int64_t j = 0; j < nt; ++j) {
            check += kt.winograd_output(WinogradOutputParams{M.data() + j * NR, TB * NR, NR, y.data()});
            std::int64_t r = t0 + j;
            const std::int64_t n = r / grid.per_image;
            r %= grid.per_image;
            const std::int64_t o0[3] = {r / (grid.t[1] * grid.t[2]) * 2, r / grid.t[2] % grid.t[1] * 2,
                                        r % grid.t[2] * 2};
            // The tile's outputs inside the output, compacted to rows of y.
            rows.valid = 0;
            for (int q = 0; q < 8; ++q) {
              const std::int64_t od = o0[0] + (q >> 2), oh = o0[1] + ((q >> 1) & 1), ow = o0[2] + (q & 1);
              if (od >= g.out[0] || oh >= g.out[1] || ow >= g.out[2]) continue;
              float* row = y.data() + rows.valid * NR;
              if (rows.valid != q) std::memcpy(row, y.data() + q * NR, std::size_t(nc) * 4);
              if (epi.active()) epi.apply(row, nc, chan0, epi.residual_offset(n, od, oh, ow));
              const Shape5& ys = out.strides;
              rows.y_off[rows.valid++] = n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3];
            }
            store_output_tile(kt, out, rows, chan0, y.data(), NR, nc);
          }
          if (!(check == 0.0f)) {
            bad.store(true);
            return;
          }
        }
      }
  });
  return !bad.load();
}

}  // namespace volconv::cpu
