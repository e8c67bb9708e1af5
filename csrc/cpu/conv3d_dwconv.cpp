// The row drivers, depthwise, few input channels and few output channels
// (C_out per group <= 4, the reduction in the lanes): work is split over
// output rows (n, od, oh); per row the (kd, kh) taps inside the input are
// listed once (D/H padding then costs nothing), and the kernel runs the
// whole W row per output channel block, writing the output in place
// (through a row buffer when the output's channels are not contiguous).
// Depthwise reads the block's channels of the input; few-cin lists each
// (kd, kh, ci) as a row of its own (the input row offset by ci, read with
// the W stride), so C_in channels cost C_in x the taps of one, with no
// gathered K panel.
// Small C_out runs one group per block and reads the group's C_in.
// Padding modes other than zeros: D/H taps read the rows padding_map.h
// names; along W the kernel sums the taps inside the input and the few
// border positions add their padded taps in the row buffer (add_w_border).
#include <algorithm>
#include <cstring>
#include <vector>

#include "../core/element.h"
#include "conv3d_igemm.h"
#include "conv_tile.h"
#include "epilogue.h"
#include "float_rows.h"
#include "padding_map.h"
#include "thread_pool.h"
#include "weight_packing.h"

namespace volconv::cpu {

namespace {

// Adds to the row buffer (positions x C channels) what the kernel left out
// at the W border: the taps whose iw lies in padding that reads the input.
// Only positions whose window crosses the border have such taps.
// Weights as the kernel reads them: depthwise / C_in 1 [kw][c_pad]; small
// C_out [group][q][co][run_pad] with kw * C_in + ci in the run (w_group: a
// group's stride, run_pad passed as c_pad).
void add_w_border(const ConvGeometry& g, const PaddingMap& pad, CpuPath path, const float* const* xr,
                  const float* const* wr, std::int64_t rows, std::int64_t x_step, std::int64_t c_pad,
                  std::int64_t w_group, float* buf) {
  const ConvParams& cp = g.params;
  const std::int64_t Wo = g.out[2], KW = g.kernel[2], W = g.in[2], C = g.out_channels;
  const std::int64_t cig = g.in_channels_per_group, cog = g.out_channels_per_group;
  const bool depthwise = path == CpuPath::dwconv;
  const std::int64_t sw = cp.stride[2], dw = cp.dilation[2], lo = cp.padding_lo[2];
  // ow in [first, last) has every tap inside the input.
  const std::int64_t first = std::min(Wo, (lo + sw - 1) / sw);
  const std::int64_t reach = W - 1 + lo - (KW - 1) * dw;
  const std::int64_t last = std::max(first, reach < 0 ? first : std::min(Wo, reach / sw + 1));
  for (std::int64_t ow = 0; ow < Wo; ++ow) {
    if (ow == first) ow = last;
    if (ow >= Wo) break;
    for (std::int64_t kw = 0; kw < KW; ++kw) {
      const std::int64_t iw = ow * sw - lo + kw * dw;
      if (iw >= 0 && iw < W) continue;  // the kernel summed it
      const std::int64_t src = pad.source(2, iw) * x_step;
      float* y = buf + ow * C;
      for (std::int64_t q = 0; q < rows; ++q) {
        const float* x = xr[q] + src;
        if (path == CpuPath::small_cout) {
          for (std::int64_t c = 0; c < C; ++c) {
            const std::int64_t grp = c / cog;
            const float* w = wr[q] + grp * w_group + (c % cog) * c_pad + kw * cig;
            for (std::int64_t ci = 0; ci < cig; ++ci) y[c] += x[grp * cig + ci] * w[ci];
          }
          continue;
        }
        const float* w = wr[q] + kw * c_pad;
        for (std::int64_t c = 0; c < C; ++c) y[c] += x[depthwise ? c : 0] * w[c];
      }
    }
  }
}

// EX: the input's element type. Other than float32, or float32 with strided
// channels (not planned here), input rows are converted to fp32 rows once
// per thread (float_rows.h); a result other than float32 is written through
// the row buffer, rounded once.
template <class EX>
void run_rows(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan) {
  const DwconvKernel& k = plan.rows;
  const bool depthwise = plan.path == CpuPath::dwconv, small_cout = plan.path == CpuPath::small_cout;
  const ConvGeometry& g = call.geometry;
  const ConvParams& cp = g.params;
  const std::int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  const std::int64_t cig = g.in_channels_per_group;
  // Rows per (kd, kh): few-cin lists one per input channel.
  const std::int64_t cin = plan.path == CpuPath::few_cin ? g.in_channels : 1;
  // Blocks: NR channels (depthwise: the planner's block, up to 64 for the
  // W-blocked tiles; few-cin: the kernel's) or one group (small C_out, NR =
  // its C_out); c_pad: the weights' channel stride, a run of KW * C_in
  // (16-float aligned) for small C_out; w_block: a block's weight offset.
  const std::int64_t C = g.out_channels, NR = plan.nr, blocks = small_cout ? g.groups : (C + NR - 1) / NR;
  const std::int64_t c_pad = small_cout ? (KW * cig + 15) / 16 * 16 : blocks * NR;
  const std::int64_t w_block = small_cout ? KD * KH * NR * c_pad : NR, x_block = small_cout ? cig : depthwise ? NR : 0;
  const std::int64_t Do = g.out[0], Ho = g.out[1], Wo = g.out[2], out_rows = g.batch * Do * Ho;
  const std::vector<float> packed =
      small_cout ? pack_small_cout_f32(g, call.weight, c_pad) : pack_dwconv_f32(g, call.weight, c_pad);
  const std::int64_t w_row = small_cout ? NR * c_pad : KW * c_pad;  // per (kd, kh)
  auto* y = static_cast<float*>(call.output.data);  // written through only when the result is float32
  const Shape5& ys = call.output.strides;
  // With an epilogue the kernel writes a row buffer (in L1/L2), and the
  // epilogue runs on it as it is copied out: the output is written once.
  const EpilogueRun epi(call);
  const PaddingMap pad(g);
  const bool w_border = pad.reads(2) && (cp.padding_lo[2] > 0 || cp.padding_hi[2] > 0);
  const bool f32_out = call.output.dtype == DType::float32;
  const bool direct_out = f32_out && ys[4] == 1 && !epi.active() && !w_border, stream = plan.stream;
  // Rows run in blocks of hb output rows along H, od inside: the KD input
  // planes' slab of a block stays in L2 while od advances, so each input row
  // comes from memory about once instead of once per kd (a plane of a large
  // input is far larger than L2).
  const std::int64_t hb = plan.h_block;
  parallel_for(out_rows, [&](std::int64_t begin, std::int64_t end) {
    std::vector<const float*> xr(std::size_t(KD * KH * cin)), wr(std::size_t(KD * KH * cin));
    std::vector<float> row_buf(direct_out ? 0 : std::size_t(Wo * C));
    std::vector<void*> ptrs(f32_out ? 0 : std::size_t(Wo));
    // Channel-planar rows for the pairs kernel.
    const bool planar = plan.planar_row > 0;
    InputRows<EX> in(call.input, g, kt, plan.row_slots, plan.planar_row, cp.padding_lo[2]);
    const std::int64_t x_step = in.step(), x_channel = in.channel_step();
    for (std::int64_t it = begin; it < end; ++it) {
      // it -> (n, H block, od, oh in block): see hb above.
      const std::int64_t n = it / (Do * Ho), rest = it % (Do * Ho), hb0 = rest / (Do * hb) * hb;
      const std::int64_t rows_hb = std::min(hb, Ho - hb0), in_hb = rest - hb0 * Do;
      const std::int64_t od = in_hb / rows_hb, oh = hb0 + in_hb % rows_hb;
      std::int64_t rows = 0;
      in.cache.begin_row();
      for (std::int64_t kd = 0; kd < KD; ++kd) {
        const std::int64_t id = pad.source(0, od * cp.stride[0] - cp.padding_lo[0] + kd * cp.dilation[0]);
        if (id < 0) continue;
        for (std::int64_t kh = 0; kh < KH; ++kh) {
          const std::int64_t ih = pad.source(1, oh * cp.stride[1] - cp.padding_lo[1] + kh * cp.dilation[1]);
          if (ih < 0) continue;
          const float* x_row = in.row(n, id, ih);
          for (std::int64_t ci = 0; ci < cin; ++ci) {
            xr[std::size_t(rows)] = x_row + ci * x_channel;
            wr[std::size_t(rows++)] = packed.data() + ((kd * KH + kh) * cin + ci) * w_row;
          }
        }
      }
      float* yrow = direct_out ? y + n * ys[0] + od * ys[1] + oh * ys[2] : row_buf.data();
      const std::int64_t y_step = direct_out ? ys[3] : C;
      for (std::int64_t blk = 0; blk < blocks; ++blk) {
        const std::int64_t c0 = blk * NR;
        // The kernel reads block blk of each row: shift the row pointers to
        // it and back afterwards (the input's only if depthwise or grouped).
        const std::int64_t xc0 = blk * x_block, wc0 = blk * w_block;
        for (std::int64_t q = 0; q < rows; ++q) xr[std::size_t(q)] += xc0, wr[std::size_t(q)] += wc0;
        // Planar rows start at iw = -padding_lo and hold the padding: no pad, width the row's length.
        k.fn(DwconvParams{rows, xr.data(), wr.data(), KW, cp.stride[2], cp.dilation[2],
                          planar ? 0 : cp.padding_lo[2], planar ? plan.planar_row : g.in[2], x_step, c_pad,
                          yrow + c0, Wo, y_step, int(std::min<std::int64_t>(NR, C - c0)), stream && direct_out, cig});
        for (std::int64_t q = 0; q < rows; ++q) xr[std::size_t(q)] -= xc0, wr[std::size_t(q)] -= wc0;
      }
      if (w_border)
        add_w_border(g, pad, plan.path, xr.data(), wr.data(), rows, x_step, c_pad, w_block, row_buf.data());
      if (!f32_out) {
        if (epi.active())
          for (std::int64_t ow = 0; ow < Wo; ++ow)
            epi.apply(row_buf.data() + ow * C, C, 0, epi.residual_offset(n, od, oh, ow));
        store_row(call.output, kt, n, od, oh, row_buf.data(), Wo, C, ptrs);
      } else if (!direct_out) {
        float* yr = y + n * ys[0] + od * ys[1] + oh * ys[2];
        for (std::int64_t ow = 0; ow < Wo; ++ow) {
          float* v = row_buf.data() + ow * C;
          if (epi.active()) epi.apply(v, C, 0, epi.residual_offset(n, od, oh, ow));
          float* dst = yr + ow * ys[3];
          if (ys[4] == 1)
            std::memcpy(static_cast<void*>(dst), v, std::size_t(C) * sizeof(float));  // dst may be unaligned
          else
            for (std::int64_t c = 0; c < C; ++c) store_any(dst + c * ys[4], v[c]);
        }
      }
    }
  });
}

}  // namespace

void conv3d_rows(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan) {
  // float64 results run the direct loops (plan_conv3d), so inputs are 16- or 32-bit here.
  switch (call.input.dtype) {
    case DType::float16: return run_rows<Element<DType::float16>>(call, kt, plan);
    case DType::bfloat16: return run_rows<Element<DType::bfloat16>>(call, kt, plan);
    default: return run_rows<Element<DType::float32>>(call, kt, plan);
  }
}

}  // namespace volconv::cpu
