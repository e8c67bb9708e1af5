// Depthwise data problems (conv_transpose3d, conv3d's input gradient,
// conv_general with groups == C_in == C_out) on the depthwise row kernel
// (ukernels/f32-dwconv.h), every stride phase in one pass over the output:
//  - work is split over output rows (n, od, oh); per row the (kd, kh) taps
//    whose dilated input index is a real input row are listed, so D/H
//    padding and the inserted zeros of input dilation cost nothing;
//  - along W the row is computed phase by phase (plan_dim): phase r's
//    outputs r, r + P, ... are a forward row conv with that phase's taps
//    (tap0 + T*t: a weight step of T taps) written with a step of P
//    positions, so no inserted zero is multiplied either;
//  - weights are packed once, flipped as the problem says, as fp32.
// float16 / bfloat16 / strided inputs are converted to fp32 rows in a small
// per-thread cache (each input row serves several output rows) and results
// are rounded once at the store; float64 results accumulate in double.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "conv3d_plan.h"
#include "conv_problem_cpu.h"
#include "conv_tile.h"
#include "dw_backward.h"
#include "float_rows.h"
#include "thread_pool.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

// The logical weight (flip applied) as A: [kd][kh][kw][c_pad], zero-padded.
template <class A>
std::vector<A> pack_weight(const ConvProblem& p, std::int64_t c_pad) {
  const ConvProblemGeometry& g = p.geometry;
  std::vector<A> out(std::size_t(g.kernel[0] * g.kernel[1] * g.kernel[2] * c_pad), A(0));
  const Shape5& s = p.weight.strides;
  visit_dtype(p.weight.dtype, [&](auto e) {
    using E = decltype(e);
    const auto* w = static_cast<const typename E::storage*>(p.weight.data);
    std::int64_t t = 0;
    for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++t) {
          const std::int64_t k[3] = {kd, kh, kw};
          std::int64_t off = 0;
          for (int i = 0; i < 3; ++i) off += (g.flip ? g.kernel[i] - 1 - k[i] : k[i]) * s[i + 1];
          // Depthwise: stored (C, K..., 1) in either weight layout.
          for (std::int64_t c = 0; c < g.out_channels; ++c)
            out[std::size_t(t * c_pad + c)] = E::template load<A>(load_any(w + off + c * s[0]));
        }
  });
  return out;
}

// Where row (n, od, oh)'s (kd, kh) taps read: the input rows that exist.
struct RowTaps {
  std::int64_t count = 0;
  std::vector<std::int64_t> id, ih, tap;  // tap = kd * KH + kh
};

void list_taps(const ConvProblemGeometry& g, std::int64_t od, std::int64_t oh, RowTaps& t) {
  t.count = 0;
  for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd) {
    std::int64_t id = od * g.stride[0] - g.padding_lo[0] + kd * g.kernel_dilation[0];
    if (id < 0 || id % g.input_dilation[0] != 0 || (id /= g.input_dilation[0]) >= g.in[0]) continue;
    for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      std::int64_t ih = oh * g.stride[1] - g.padding_lo[1] + kh * g.kernel_dilation[1];
      if (ih < 0 || ih % g.input_dilation[1] != 0 || (ih /= g.input_dilation[1]) >= g.in[1]) continue;
      t.id[std::size_t(t.count)] = id;
      t.ih[std::size_t(t.count)] = ih;
      t.tap[std::size_t(t.count++)] = kd * g.kernel[1] + kh;
    }
  }
}

// Output row `it` of the work order: (n, H block, od, oh in the block), so
// the KD input planes of a block of hb rows stay in L2 while od advances.
struct RowIndex {
  std::int64_t n, od, oh;
};
RowIndex row_of(std::int64_t it, std::int64_t Do, std::int64_t Ho, std::int64_t hb) {
  const std::int64_t n = it / (Do * Ho), rest = it % (Do * Ho), hb0 = rest / (Do * hb) * hb;
  const std::int64_t rows = std::min(hb, Ho - hb0), in_block = rest - hb0 * Do;
  return {n, in_block / rows, hb0 + in_block % rows};
}

// The W phases of the problem: outputs r, r + P, ... read their own taps
// (P = phase_period along W), r = 0 .. min(P, Wo) - 1.
std::vector<DimPhase> w_phases(const ConvProblemGeometry& g) {
  const std::int64_t P = phase_period(g, 2);
  std::vector<DimPhase> phases;
  for (std::int64_t r = 0; r < std::min(P, g.out[2]); ++r) phases.push_back(plan_dim(g, 2, r, P));
  return phases;
}

// NR: channels a kernel call (ProblemPlan::channel_block).
template <class EX>
void dw_data_f32(const ConvProblem& p, const KernelTable& kt, std::int64_t hb, std::int64_t NR) {
  const ConvProblemGeometry& g = p.geometry;
  const DwconvKernel& k = kt.f32_dwconv;
  const std::int64_t KH = g.kernel[1], KW = g.kernel[2];
  const std::int64_t Do = g.out[0], Ho = g.out[1], Wo = g.out[2];
  const std::int64_t P = phase_period(g, 2);
  const std::vector<DimPhase> phases = w_phases(g);
  const std::int64_t C = g.out_channels, blocks = (C + NR - 1) / NR, c_pad = blocks * NR;
  const std::vector<float> packed = pack_weight<float>(p, c_pad);
  const TensorView& res = p.result;
  const bool direct = res.dtype == DType::float32 && res.strides[4] == 1;
  const std::int64_t taps_dh = g.kernel[0] * KH;

  parallel_for(g.batch * Do * Ho, [&](std::int64_t begin, std::int64_t end) {
    InputRows<EX> in(p.input, g, kt, 2 * taps_dh + 1);  // > the rows of one output row
    RowTaps t;
    t.id.resize(std::size_t(taps_dh));
    t.ih.resize(std::size_t(taps_dh));
    t.tap.resize(std::size_t(taps_dh));
    const std::size_t n_taps = std::size_t(taps_dh);
    std::vector<const float*> xr(n_taps), xq(n_taps), wq(n_taps);
    std::vector<float> buf(direct ? 0 : std::size_t(Wo * C));
    std::vector<void*> ptrs(direct ? 0 : std::size_t(Wo));
    const std::int64_t x_step = in.step();
    for (std::int64_t it = begin; it < end; ++it) {
      const RowIndex r = row_of(it, Do, Ho, hb);
      const std::int64_t n = r.n, od = r.od, oh = r.oh;
      list_taps(g, od, oh, t);
      in.cache.begin_row();
      for (std::int64_t q = 0; q < t.count; ++q) xr[std::size_t(q)] = in.row(n, t.id[std::size_t(q)], t.ih[std::size_t(q)]);
      float* y = direct ? static_cast<float*>(res.data) + n * res.strides[0] + od * res.strides[1] +
                              oh * res.strides[2]
                        : buf.data();
      const std::int64_t y_pos = direct ? res.strides[3] : C;
      for (const DimPhase& ph : phases) {
        float* yp = y + ph.first * y_pos;
        if (ph.zero) {
          for (std::int64_t i = 0; i < ph.count; ++i) std::fill(yp + i * P * y_pos, yp + i * P * y_pos + C, 0.0f);
          continue;
        }
        for (std::int64_t b = 0; b < blocks; ++b) {
          const std::int64_t c0 = b * NR;
          // Row pointers at the phase's first input column / tap, and channel c0.
          for (std::int64_t q = 0; q < t.count; ++q) {
            xq[std::size_t(q)] = xr[std::size_t(q)] + ph.in_begin * x_step + c0;
            wq[std::size_t(q)] = packed.data() + (t.tap[std::size_t(q)] * KW + ph.tap0) * c_pad + c0;
          }
          k.fn(DwconvParams{t.count, xq.data(), wq.data(), ph.taps, ph.stride, ph.dilation, ph.pad_lo, ph.in_len,
                            x_step, ph.tap_step * c_pad, yp + c0, ph.count, P * y_pos,
                            int(std::min<std::int64_t>(NR, C - c0)), 0});
        }
      }
      if (!direct) store_row(res, kt, n, od, oh, buf.data(), Wo, C, ptrs);
    }
  });
}

// float64 results: the same taps and phases as plain loops in double.
template <class EX>
void dw_data_f64(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t C = g.out_channels, KH = g.kernel[1], KW = g.kernel[2];
  const std::int64_t Do = g.out[0], Ho = g.out[1], Wo = g.out[2];
  const std::vector<double> packed = pack_weight<double>(p, C);
  const auto* x = static_cast<const typename EX::storage*>(p.input.data);
  const Shape5& xs = p.input.strides;
  auto* y = static_cast<double*>(p.result.data);
  const Shape5& ys = p.result.strides;
  parallel_for(g.batch * Do * Ho, [&](std::int64_t begin, std::int64_t end) {
    RowTaps t;
    t.id.resize(std::size_t(g.kernel[0] * KH));
    t.ih.resize(t.id.size());
    t.tap.resize(t.id.size());
    std::vector<double> acc(static_cast<std::size_t>(C));
    for (std::int64_t row = begin; row < end; ++row) {
      const std::int64_t n = row / (Do * Ho), od = row / Ho % Do, oh = row % Ho;
      list_taps(g, od, oh, t);
      for (std::int64_t ow = 0; ow < Wo; ++ow) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (std::int64_t q = 0; q < t.count; ++q)
          for (std::int64_t kw = 0; kw < KW; ++kw) {
            std::int64_t iw = ow * g.stride[2] - g.padding_lo[2] + kw * g.kernel_dilation[2];
            if (iw < 0 || iw % g.input_dilation[2] != 0 || (iw /= g.input_dilation[2]) >= g.in[2]) continue;
            const auto* xp = x + n * xs[0] + t.id[std::size_t(q)] * xs[1] + t.ih[std::size_t(q)] * xs[2] + iw * xs[3];
            const double* w = packed.data() + (t.tap[std::size_t(q)] * KW + kw) * C;
            for (std::int64_t c = 0; c < C; ++c) acc[std::size_t(c)] += EX::template load<double>(load_any(xp + c * xs[4])) * w[c];
          }
        double* yp = y + n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3];
        for (std::int64_t c = 0; c < C; ++c) store_any(yp + c * ys[4], acc[std::size_t(c)]);
      }
    }
  });
}

}  // namespace

bool dw_data_applies(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  return p.op == detail::ConvOp::data && g.in_channels == g.groups && g.out_channels == g.groups;
}

std::int64_t dw_data_channel_block(const ConvProblem& p, std::int64_t kernel_nr) {
  // The forward's rule (dwconv_block) where every W phase that reads the
  // input runs the W-blocked tiles; the kernel's own NR otherwise.
  std::int64_t block = 0;
  for (const DimPhase& ph : w_phases(p.geometry)) {
    if (ph.zero) continue;
    const std::int64_t b = dwconv_block(kernel_nr, p.geometry.out_channels, ph.stride, ph.dilation, ph.taps);
    block = block == 0 ? b : std::min(block, b);
  }
  return block == 0 ? kernel_nr : block;
}

void run_dw_data(const ConvProblem& p, const KernelTable& kt, std::int64_t h_block, std::int64_t channel_block) {
  visit_dtype(p.input.dtype, [&](auto ex) {
    if (p.result.dtype == DType::float64)
      dw_data_f64<decltype(ex)>(p);
    else
      dw_data_f32<decltype(ex)>(p, kt, std::max<std::int64_t>(1, h_block), channel_block);
  });
}

}  // namespace volconv::cpu
