// The depthwise driver: tiles of MR output positions, all channel blocks of
// a tile from one indirection (row pointers at channel 0, the block's
// channel offset applied by the kernel). Split over M tiles.
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
  const std::int64_t M = g.batch * g.out[0] * g.out[1] * g.out[2], n_mt = (M + MR - 1) / MR;
  const std::vector<float> packed = pack_dwconv_f32(g, call.weight, c_pad);
  const std::vector<float> zero(std::size_t(c_pad), 0.0f);
  const auto* x = static_cast<const char*>(call.input.data);
  const OutputTarget out{static_cast<char*>(call.output.data), call.output.dtype,
                         std::int64_t(dtype_size(call.output.dtype)), call.output.strides};
  parallel_for(n_mt, [&](std::int64_t begin, std::int64_t end) {
    std::vector<const void*> a(std::size_t(taps * MR));
    std::vector<std::int64_t> tap(static_cast<std::size_t>(taps)), w_off(static_cast<std::size_t>(taps));
    std::vector<float> c(std::size_t(MR * NR));
    TileRows rows;
    for (std::int64_t mt = begin; mt < end; ++mt) {
      locate_rows(g, call.input.strides, out.strides, mt * MR, MR, rows);
      const std::int64_t ks =
          build_indirection(g, call.input.strides, rows, MR, x, 4, zero.data(), a.data(), tap.data());
      for (std::int64_t s = 0; s < ks; ++s) w_off[std::size_t(s)] = tap[std::size_t(s)] * c_pad;
      for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const int nc = int(std::min<std::int64_t>(NR, C - blk * NR));
        k.fn(DwconvParams{ks, reinterpret_cast<const float* const*>(a.data()), blk * NR, w_off.data(),
                          packed.data() + blk * NR, c.data(), nc});
        store_output_tile(kt, out, rows, blk * NR, c.data(), NR, nc);
      }
    }
  });
  return k.name;
}

}  // namespace volconv::cpu
