#include "conv_tile.h"

#include <algorithm>
#include <cstring>

#include "padding_map.h"

namespace volconv::cpu {

void locate_rows(const ConvGeometry& g, const Shape5& xs, const Shape5& ys, std::int64_t m0, int mr,
                 TileRows& rows) {
  const std::int64_t M = g.batch * g.out[0] * g.out[1] * g.out[2];
  const ConvParams& p = g.params;
  std::int64_t m = m0;
  std::int64_t ow = m % g.out[2], rest = m / g.out[2];
  std::int64_t oh = rest % g.out[1];
  rest /= g.out[1];
  std::int64_t od = rest % g.out[0], n = rest / g.out[0];
  rows.valid = 0;
  rows.m0 = m0;
  for (int r = 0; r < mr && m < M; ++r, ++m) {
    rows.x_off[r] = n * xs[0];
    rows.id0[r] = od * p.stride[0] - p.padding_lo[0];
    rows.ih0[r] = oh * p.stride[1] - p.padding_lo[1];
    rows.iw0[r] = ow * p.stride[2] - p.padding_lo[2];
    rows.y_off[r] = n * ys[0] + od * ys[1] + oh * ys[2] + ow * ys[3];
    rows.valid = r + 1;
    if (++ow == g.out[2]) {
      ow = 0;
      if (++oh == g.out[1]) {
        oh = 0;
        if (++od == g.out[0]) od = 0, ++n;
      }
    }
  }
}

namespace {

// Every window of the tile inside the input, padding mode aside (most tiles
// of a padded convolution): row r at tap t is row r's tap-0 address plus
// t's fixed offset, and every tap is listed. The general walk below would
// list the same taps and addresses, at several times the cost (it was ~10%
// of a 32-channel forward). Returns -1 when some row's window leaves the input.
std::int64_t build_indirection_inside(const ConvGeometry& g, const Shape5& xs, const TileRows& rows, int mr,
                                      const char* x, std::int64_t esize, const void* zero, const void** a,
                                      std::int64_t* tap) {
  const ConvParams& p = g.params;
  const std::int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  const std::int64_t span_d = (KD - 1) * p.dilation[0], span_h = (KH - 1) * p.dilation[1],
                     span_w = (KW - 1) * p.dilation[2];
  const char* base[kMaxMR];
  for (int r = 0; r < rows.valid; ++r) {
    const std::int64_t id = rows.id0[r], ih = rows.ih0[r], iw = rows.iw0[r];
    if (id < 0 || ih < 0 || iw < 0 || id + span_d >= g.in[0] || ih + span_h >= g.in[1] || iw + span_w >= g.in[2])
      return -1;
    base[r] = x + (rows.x_off[r] + id * xs[1] + ih * xs[2] + iw * xs[3]) * esize;
  }
  const std::int64_t step_d = p.dilation[0] * xs[1] * esize, step_h = p.dilation[1] * xs[2] * esize,
                     step_w = p.dilation[2] * xs[3] * esize;
  std::int64_t t = 0;
  for (std::int64_t kd = 0; kd < KD; ++kd)
    for (std::int64_t kh = 0; kh < KH; ++kh)
      for (std::int64_t kw = 0; kw < KW; ++kw, ++t) {
        const std::int64_t off = kd * step_d + kh * step_h + kw * step_w;
        const void** row = a + t * mr;
        for (int r = 0; r < rows.valid; ++r) row[r] = base[r] + off;
        for (int r = rows.valid; r < mr; ++r) row[r] = zero;
        tap[t] = t;
      }
  return t;
}

}  // namespace

std::int64_t build_indirection(const ConvGeometry& g, const Shape5& xs, const TileRows& rows, int mr,
                               const char* x, std::int64_t esize, const void* zero, const void** a,
                               std::int64_t* tap) {
  if (const std::int64_t ks = build_indirection_inside(g, xs, rows, mr, x, esize, zero, a, tap); ks >= 0) return ks;
  // The tile's rows split into runs of consecutive positions of one output
  // row (usually one or two runs). Within a run the D/H test and base address
  // are shared and, at each kw, the rows inside the input along W are one
  // range whose addresses step by a constant: no per-row bounds tests.
  const ConvParams& p = g.params;
  const PaddingMap pad(g);
  const bool w_reads = pad.reads(2);
  struct Run {
    int r0, r1;
    std::int64_t iw0;
    const char* base;
    bool dh_ok;
  };
  Run runs[kMaxMR];
  int n_runs = 0;
  const std::int64_t sw = p.stride[2], step = sw * xs[3] * esize;
  for (int r = 0; r < rows.valid; ++r) {
    if (n_runs > 0 && rows.x_off[r] == rows.x_off[r - 1] && rows.id0[r] == rows.id0[r - 1] &&
        rows.ih0[r] == rows.ih0[r - 1] && rows.iw0[r] == rows.iw0[r - 1] + sw) {
      runs[n_runs - 1].r1 = r + 1;
      continue;
    }
    runs[n_runs++] = Run{r, r + 1, rows.iw0[r], nullptr, false};
  }
  std::int64_t ks = 0;
  for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
    for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      bool any_dh = false;
      for (int j = 0; j < n_runs; ++j) {
        Run& u = runs[j];
        const int r = u.r0;
        const std::int64_t id = pad.source(0, rows.id0[r] + kd * p.dilation[0]);
        const std::int64_t ih = pad.source(1, rows.ih0[r] + kh * p.dilation[1]);
        u.dh_ok = id >= 0 && ih >= 0;
        // Addresses are formed only inside the input (else undefined, and
        // id * stride may overflow for huge padding).
        u.base = u.dh_ok ? x + (rows.x_off[r] + id * xs[1] + ih * xs[2]) * esize : nullptr;
        any_dh |= u.dh_ok;
      }
      if (!any_dh) continue;  // the whole tile reads D/H padding at this (kd, kh)
      for (std::int64_t kw = 0; kw < g.kernel[2]; ++kw) {
        bool any = false;
        const void** row = a + ks * mr;
        for (int r = rows.valid; r < mr; ++r) row[r] = zero;
        for (int j = 0; j < n_runs; ++j) {
          const Run& u = runs[j];
          const std::int64_t n = u.r1 - u.r0, iw = u.iw0 + kw * p.dilation[2];
          // Rows [lo, hi) of the run read inside the input along W.
          std::int64_t lo = 0, hi = 0;
          if (u.dh_ok) {
            lo = std::min<std::int64_t>(n, iw >= 0 ? 0 : ceil_div_stride(-iw, sw));
            hi = std::max<std::int64_t>(lo, std::min<std::int64_t>(n, g.in[2] > iw ? ceil_div_stride(g.in[2] - iw, sw) : 0));
          }
          const void** out = row + u.r0;
          // Rows in W padding: the zero row, or the element the mode names.
          const auto border = [&](std::int64_t i) -> const void* {
            return u.dh_ok && w_reads ? u.base + pad.source(2, iw + i * sw) * xs[3] * esize : zero;
          };
          for (std::int64_t i = 0; i < lo; ++i) out[i] = border(i);
          if (hi > lo) {
            const char* src = u.base + (iw + lo * sw) * xs[3] * esize;  // row lo, inside the input
            for (std::int64_t i = lo; i < hi; ++i) out[i] = src + (i - lo) * step;
          }
          for (std::int64_t i = hi; i < n; ++i) out[i] = border(i);
          any |= hi > lo || (u.dh_ok && w_reads);
        }
        if (any) tap[ks++] = (kd * g.kernel[1] + kh) * g.kernel[2] + kw;
      }
    }
  return ks;
}

std::int64_t build_indirection_fold_w(const ConvGeometry& g, const Shape5& xs, const TileRows& rows, int mr,
                                      const char* x, std::int64_t esize, const void* zero, char* scratch,
                                      const void** a, std::int64_t* tap) {
  const ConvParams& p = g.params;
  const PaddingMap pad(g);
  const bool w_reads = pad.reads(2);
  const std::int64_t KW = g.kernel[2], W = g.in[2], cin = g.in_channels, window = KW * cin * esize;
  // Runs of consecutive rows of one output row (as in build_indirection)
  // share the D/H source and its line address per (kd, kh); only a row
  // whose window crosses the W border needs more than one add.
  struct Run {
    int r0, r1;
  };
  Run runs[kMaxMR];
  int n_runs = 0;
  for (int r = 0; r < rows.valid; ++r) {
    if (n_runs > 0 && rows.x_off[r] == rows.x_off[r - 1] && rows.id0[r] == rows.id0[r - 1] &&
        rows.ih0[r] == rows.ih0[r - 1]) {
      runs[n_runs - 1].r1 = r + 1;
      continue;
    }
    runs[n_runs++] = Run{r, r + 1};
  }
  const std::int64_t w_step = xs[3] * esize;
  std::int64_t ks = 0;
  for (std::int64_t kd = 0; kd < g.kernel[0]; ++kd)
    for (std::int64_t kh = 0; kh < g.kernel[1]; ++kh) {
      bool any = false;
      const void** row = a + ks * mr;
      for (int r = rows.valid; r < mr; ++r) row[r] = zero;
      for (int j = 0; j < n_runs; ++j) {
        const Run& u = runs[j];
        const std::int64_t id = pad.source(0, rows.id0[u.r0] + kd * p.dilation[0]);
        const std::int64_t ih = pad.source(1, rows.ih0[u.r0] + kh * p.dilation[1]);
        if (id < 0 || ih < 0) {
          for (int r = u.r0; r < u.r1; ++r) row[r] = zero;
          continue;
        }
        const char* line = x + (rows.x_off[u.r0] + id * xs[1] + ih * xs[2]) * esize;
        for (int r = u.r0; r < u.r1; ++r) {
          const std::int64_t iw0 = rows.iw0[r];
          if (iw0 >= 0 && iw0 + KW <= W) {  // the window lies inside the row
            row[r] = line + iw0 * w_step;
            any = true;
            continue;
          }
          if (!w_reads && (iw0 + KW <= 0 || iw0 >= W)) {
            row[r] = zero;
            continue;
          }
          any = true;
          // Window across the W border: copy its inside part (taps [lo, hi),
          // addressed from tap lo: iw0 itself may lie before the row); the
          // rest is zero or, for other padding modes, the elements the mode names.
          const std::int64_t lo = std::clamp<std::int64_t>(-iw0, 0, KW), hi = std::clamp<std::int64_t>(W - iw0, lo, KW);
          char* buf = scratch + ((kd * g.kernel[1] + kh) * mr + r) * window;
          const std::size_t tap_bytes = std::size_t(cin * esize);
          for (std::int64_t t = 0; t < KW; ++t) {
            if (t == lo && hi > lo) {
              std::memcpy(buf + lo * tap_bytes, line + (iw0 + lo) * w_step, std::size_t(hi - lo) * tap_bytes);
              t = hi - 1;
              continue;
            }
            if (w_reads)
              std::memcpy(buf + t * tap_bytes, line + pad.source(2, iw0 + t) * w_step, tap_bytes);
            else
              std::memset(buf + t * tap_bytes, 0, tap_bytes);
          }
          row[r] = buf;
        }
      }
      if (any) tap[ks++] = kd * g.kernel[1] + kh;
    }
  return ks;
}

}  // namespace volconv::cpu

#include "../core/element.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {

int storage_code(DType dtype) {
  switch (dtype) {
    case DType::float16: return kF16;
    case DType::bfloat16: return kBF16;
    default: return kF32;
  }
}

void store_output_tile(const KernelTable& kt, const OutputTarget& out, const TileRows& rows, std::int64_t chan0,
                       const float* c, int ldc, int nc) {
  const Shape5& ys = out.strides;
  if (ys[4] == 1 && out.dtype != DType::float64) {
    void* dst[kMaxMR];
    for (int r = 0; r < rows.valid; ++r) dst[r] = out.y + (rows.y_off[r] + chan0) * out.esize;
    if (kt.store_tile(TileStore{c, ldc, rows.valid, nc, dst, storage_code(out.dtype), out.stream ? 1 : 0})) return;
  }
  visit_dtype(out.dtype, [&](auto e) {
    using E = decltype(e);
    auto* y = reinterpret_cast<typename E::storage*>(out.y);
    for (int r = 0; r < rows.valid; ++r)
      for (int j = 0; j < nc; ++j) store_any(y + rows.y_off[r] + (chan0 + j) * ys[4], E::template store<float>(c[r * ldc + j]));
  });
}

}  // namespace volconv::cpu
