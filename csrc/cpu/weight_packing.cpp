#include "weight_packing.h"

#include "../core/element.h"
#include "../core/workspace.h"
#include "thread_pool.h"

#include <atomic>
#include <cmath>

namespace volconv::cpu {
namespace {

// Calls f(co, t, ci, value as float) for every weight, read through its strides.
template <class F>
void for_each_weight(const ConvGeometry& g, const ConstTensorView& w, F&& f) {
  visit_dtype(w.dtype, [&](auto e) {
    using E = decltype(e);
    const auto* p = static_cast<const typename E::storage*>(w.data);
    const Shape5& s = w.strides;
    for (std::int64_t co = 0; co < g.out_channels; ++co) {
      std::int64_t t = 0;
      for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
        for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
          for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++t)
            for (std::int64_t ci = 0; ci < g.in_channels_per_group; ++ci)
              f(co, t, ci, E::template load<float>(load_any(p + co * s[0] + kd * s[1] + kh * s[2] + kw * s[3] + ci * s[4])));
    }
  });
}

// Packing is a per-call cost that does not shrink with the thread count: on
// the 16-core Xeon a serial pack of shape h's 128 x 27 x 64 weights took
// about a fifth of the call. Weights this many and more are packed by every
// thread; fewer stay on the caller (a parallel region costs microseconds).
constexpr std::int64_t kParallelPackWeights = 1 << 15;

// Calls f(gb, t, src_off, nj) for each (group x NR block gb, tap t) slice of
// the igemm panels: src_off is the element offset of the block's first
// output channel at tap t (C_in 0), nj its valid channels (the rest stay
// zero). Each slice is one contiguous run of the output, written by one
// thread in order.
template <class F>
void for_each_panel_tap(const ConvGeometry& g, std::int64_t blocks, int nr, const ConstTensorView& w, F&& f) {
  const std::int64_t cout = g.out_channels_per_group, KH = g.kernel[1], KW = g.kernel[2], taps = g.taps();
  const Shape5& s = w.strides;
  auto run = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t it = begin; it < end; ++it) {
      const std::int64_t t = it % taps, gb = it / taps, grp = gb / blocks, j0 = gb % blocks * nr;
      const std::int64_t kd = t / (KH * KW), kh = t / KW % KH, kw = t % KW;
      f(gb, t, (grp * cout + j0) * s[0] + kd * s[1] + kh * s[2] + kw * s[3], std::min<std::int64_t>(nr, cout - j0));
    }
  };
  const std::int64_t slices = g.groups * blocks * taps;
  if (g.out_channels * taps * g.in_channels_per_group < kParallelPackWeights)
    run(0, slices);
  else
    parallel_for(slices, run);
}

}  // namespace

std::vector<float> pack_igemm_f32(const ConvGeometry& g, const ConstTensorView& w, int nr) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + nr - 1) / nr, panel = g.taps() * cin * nr;
  std::vector<float> out = detail::workspace(std::size_t(g.groups * blocks * panel), "the packed weights", 0.0f);
  visit_dtype(w.dtype, [&](auto e) {
    using E = decltype(e);
    const auto* p = static_cast<const typename E::storage*>(w.data);
    for_each_panel_tap(g, blocks, nr, w, [&](std::int64_t gb, std::int64_t t, std::int64_t src_off, std::int64_t nj) {
      // Channel j's C_in run is read in order; its writes (stride NR) stay
      // within the slice's cin x NR floats, in L1.
      float* dst = out.data() + gb * panel + t * cin * nr;
      for (std::int64_t j = 0; j < nj; ++j) {
        const auto* src = p + src_off + j * w.strides[0];
        for (std::int64_t ci = 0; ci < cin; ++ci)
          dst[ci * nr + j] = E::template load<float>(load_any(src + ci * w.strides[4]));
      }
    });
  });
  return out;
}

std::vector<std::uint16_t> pack_igemm_bf16_pairs(const ConvGeometry& g, const ConstTensorView& w, int nr) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + nr - 1) / nr, panel = g.taps() * cin * nr;
  std::vector<std::uint16_t> out =
      detail::workspace(std::size_t(g.groups * blocks * panel), "the packed weights", std::uint16_t(0));
  const auto* p = static_cast<const std::uint16_t*>(w.data);  // bf16 bits, copied as they are
  for_each_panel_tap(g, blocks, nr, w, [&](std::int64_t gb, std::int64_t t, std::int64_t src_off, std::int64_t nj) {
    std::uint16_t* tap = out.data() + gb * panel + t * cin * nr;
    for (std::int64_t ci = 0; ci < cin; ++ci) {
      std::uint16_t* dst = tap + (ci / 2) * 2 * nr + ci % 2;
      for (std::int64_t j = 0; j < nj; ++j) dst[2 * j] = load_any(p + src_off + j * w.strides[0] + ci * w.strides[4]);
    }
  });
  return out;
}

std::vector<float> pack_dwconv_f32(const ConvGeometry& g, const ConstTensorView& w, std::int64_t c_pad) {
  const std::int64_t cin = g.in_channels_per_group, KW = g.kernel[2];
  std::vector<float> out = detail::workspace(std::size_t(g.taps() * cin * c_pad), "the packed weights", 0.0f);
  for_each_weight(g, w, [&](std::int64_t co, std::int64_t t, std::int64_t ci, float v) {
    out[std::size_t(((t / KW * cin + ci) * KW + t % KW) * c_pad + co)] = v;
  });
  return out;
}

std::vector<float> pack_small_cout_f32(const ConvGeometry& g, const ConstTensorView& w, std::int64_t run_pad) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group, KW = g.kernel[2];
  const std::int64_t rows = g.kernel[0] * g.kernel[1];
  std::vector<float> out =
      detail::workspace(std::size_t(g.groups * rows * cout * run_pad), "the packed weights", 0.0f);
  for_each_weight(g, w, [&](std::int64_t co, std::int64_t t, std::int64_t ci, float v) {
    const std::int64_t grp = co / cout, c = co % cout, q = t / KW, kw = t % KW;
    out[std::size_t(((grp * rows + q) * cout + c) * run_pad + kw * cin + ci)] = v;
  });
  return out;
}

namespace {

// G v for one axis: 3 taps -> 4 transformed values (F(2,3)'s G rows
// [1,0,0], [1/2,1/2,1/2], [1/2,-1/2,1/2], [0,0,1]).
void winograd_g(const double* v, std::int64_t s, double* out, std::int64_t os) {
  out[0] = v[0];
  out[os] = 0.5 * (v[0] + v[s] + v[2 * s]);
  out[2 * os] = 0.5 * (v[0] - v[s] + v[2 * s]);
  out[3 * os] = v[2 * s];
}

}  // namespace

std::vector<float> pack_winograd_f32(const ConvGeometry& g, const ConstTensorView& w, int nr, bool& finite) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + nr - 1) / nr, panel = 64 * cin * nr;
  std::vector<float> out = detail::workspace(std::size_t(g.groups * blocks * panel), "the packed weights", 0.0f);
  std::atomic<bool> all_finite{true};
  visit_dtype(w.dtype, [&](auto e) {
    using E = decltype(e);
    const auto* p = static_cast<const typename E::storage*>(w.data);
    const Shape5& s = w.strides;
    parallel_for(g.out_channels, [&](std::int64_t co0, std::int64_t co1) {
      bool ok = true;
      for (std::int64_t co = co0; co < co1; ++co) {
        const std::int64_t grp = co / cout, j = co % cout;
        float* dst = out.data() + (grp * blocks + j / nr) * panel + j % nr;
        for (std::int64_t ci = 0; ci < cin; ++ci) {
          double k[27], kw4[36], kh4[48], v[64];  // [kd][kh][kw] -> [kd][kh][c] -> [kd][b][c] -> [a][b][c]
          for (int kd = 0; kd < 3; ++kd)
            for (int kh = 0; kh < 3; ++kh)
              for (int kw = 0; kw < 3; ++kw)
                k[(kd * 3 + kh) * 3 + kw] =
                    E::template load<double>(load_any(p + co * s[0] + kd * s[1] + kh * s[2] + kw * s[3] + ci * s[4]));
          for (int r = 0; r < 9; ++r) winograd_g(k + 3 * r, 1, kw4 + 4 * r, 1);
          for (int kd = 0; kd < 3; ++kd)
            for (int c = 0; c < 4; ++c) winograd_g(kw4 + 12 * kd + c, 4, kh4 + 16 * kd + c, 4);
          for (int i = 0; i < 16; ++i) winograd_g(kh4 + i, 16, v + i, 16);
          for (int q = 0; q < 64; ++q) {
            const float f = float(v[q]);
            ok = ok && std::isfinite(f);
            dst[(q * cin + ci) * nr] = f;
          }
        }
      }
      if (!ok) all_finite.store(false);
    });
  });
  finite = all_finite.load();
  return out;
}

}  // namespace volconv::cpu
