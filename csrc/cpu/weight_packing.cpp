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

}  // namespace

std::vector<float> pack_igemm_f32(const ConvGeometry& g, const ConstTensorView& w, int nr) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + nr - 1) / nr, panel = g.taps() * cin * nr;
  std::vector<float> out = detail::workspace(std::size_t(g.groups * blocks * panel), "the packed weights", 0.0f);
  for_each_weight(g, w, [&](std::int64_t co, std::int64_t t, std::int64_t ci, float v) {
    const std::int64_t grp = co / cout, j = co % cout;
    out[std::size_t((grp * blocks + j / nr) * panel + (t * cin + ci) * nr + j % nr)] = v;
  });
  return out;
}

std::vector<std::uint16_t> pack_igemm_bf16_pairs(const ConvGeometry& g, const ConstTensorView& w, int nr) {
  const std::int64_t cin = g.in_channels_per_group, cout = g.out_channels_per_group;
  const std::int64_t blocks = (cout + nr - 1) / nr, panel = g.taps() * cin * nr;
  std::vector<std::uint16_t> out =
      detail::workspace(std::size_t(g.groups * blocks * panel), "the packed weights", std::uint16_t(0));
  const auto* p = static_cast<const std::uint16_t*>(w.data);  // bf16 bits, copied as they are
  const Shape5& s = w.strides;
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t grp = co / cout, j = co % cout;
    std::int64_t t = 0;
    for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
      for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh)
        for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw, ++t)
          for (std::int64_t ci = 0; ci < cin; ++ci)
            out[std::size_t((grp * blocks + j / nr) * panel + t * cin * nr + (ci / 2) * 2 * nr + (j % nr) * 2 + ci % 2)] =
                load_any(p + co * s[0] + kd * s[1] + kh * s[2] + kw * s[3] + ci * s[4]);
  }
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
