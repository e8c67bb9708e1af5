// The depthwise driver: tiles of MR output positions along W of one output
// row, all channel blocks of a tile from one indirection (pointers at channel
// 0, the block's channel offset applied by the kernel). A tile that lies
// inside the input along W passes one pointer per tap and a row step (most
// tiles: no per-row work); border tiles pass per-row pointers with the zero
// row for padding. Split over tiles.
#include <algorithm>
#include <vector>

#include "conv3d_igemm.h"
#include "conv_tile.h"
#include "thread_pool.h"
#include "weight_packing.h"

namespace volconv::cpu {

std::string conv3d_dwconv(const detail::ConvCall& call, const KernelTable& kt) {
  const ConvGeometry& g = call.geometry;
  const DwconvKernel k = kt.f32_dwconv;
  const int MR = k.mr, NR = k.nr;
  const std::int64_t C = g.out_channels, blocks = (C + NR - 1) / NR, c_pad = blocks * NR;
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const std::int64_t Wo = g.out[2], w_tiles = (Wo + MR - 1) / MR, out_rows = g.batch * g.out[0] * g.out[1];
  const std::vector<float> packed = pack_dwconv_f32(g, call.weight, c_pad);
  const std::vector<float> zero(std::size_t(c_pad), 0.0f);
  const auto* x = static_cast<const char*>(call.input.data);
  const Shape5& xs = call.input.strides;
  const ConvParams& cp = g.params;
  const OutputTarget out{static_cast<char*>(call.output.data), call.output.dtype,
                         std::int64_t(dtype_size(call.output.dtype)), call.output.strides};
  parallel_for(out_rows * w_tiles, [&](std::int64_t begin, std::int64_t end) {
    std::vector<const void*> a(std::size_t(taps * MR));
    std::vector<std::int64_t> tap(static_cast<std::size_t>(taps)), w_off(static_cast<std::size_t>(taps));
    std::vector<float> c(std::size_t(MR * NR));
    TileRows rows;
    for (std::int64_t it = begin; it < end; ++it) {
      const std::int64_t row = it / w_tiles, ow0 = (it % w_tiles) * MR;
      const int mr = int(std::min<std::int64_t>(MR, Wo - ow0));
      locate_rows(g, xs, out.strides, row * Wo + ow0, mr, rows);
      const std::int64_t iw_first = rows.iw0[0], iw_last = rows.iw0[0] + (MR - 1) * cp.stride[2] +
                                                           (g.kernel[2] - 1) * cp.dilation[2];
      std::int64_t ks = 0, step = 0;
      if (mr == MR && iw_first >= 0 && iw_last < g.in[2]) {
        step = cp.stride[2] * xs[3];
        for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
          for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
            const std::int64_t id = rows.id0[0] + kd * cp.dilation[0], ih = rows.ih0[0] + kh * cp.dilation[1];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) continue;
            for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++ks) {
              a[std::size_t(ks)] = reinterpret_cast<const float*>(x) + rows.x_off[0] + id * xs[1] + ih * xs[2] +
                                   (iw_first + kw * cp.dilation[2]) * xs[3];
              w_off[std::size_t(ks)] = ((kd * g.kernel[1] + kh) * g.kernel[2] + kw) * c_pad;
            }
          }
      } else {
        ks = build_indirection(g, xs, rows, MR, x, 4, zero.data(), a.data(), tap.data());
        for (std::int64_t s = 0; s < ks; ++s) w_off[std::size_t(s)] = tap[std::size_t(s)] * c_pad;
      }
      for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const int nc = int(std::min<std::int64_t>(NR, C - blk * NR));
        // The strided form needs full channel vectors; a channel tail re-uses
        // the per-row form, so rebuild it for this tile if needed.
        if (step > 0 && nc != NR) {
          ks = build_indirection(g, xs, rows, MR, x, 4, zero.data(), a.data(), tap.data());
          for (std::int64_t s = 0; s < ks; ++s) w_off[std::size_t(s)] = tap[std::size_t(s)] * c_pad;
          step = 0;
        }
        k.fn(DwconvParams{ks, reinterpret_cast<const float* const*>(a.data()), step, blk * NR, w_off.data(),
                          packed.data() + blk * NR, c.data(), nc});
        store_output_tile(kt, out, rows, blk * NR, c.data(), NR, nc);
      }
    }
  });
  return k.name;
}

}  // namespace volconv::cpu
