// The weight gradient of a general convolution, as a GEMM whose K is the
// output positions: dW[co, tap, ci] = sum over positions p of
// dY[p, co] * X[p shifted by tap, ci], per group.
//  - K (positions) is cut into kWeightGradParts fixed ranges; each
//    (range, tap) is one work item with its own partial sum, and the partial
//    sums are added in range order at the end. Nothing depends on the thread
//    count, so neither do the bits of the result.
//  - An item walks its range in blocks of positions, gathers (and converts
//    to the accumulator type) only the rows whose tap lands on a real input
//    element (not padding, not an inserted zero of input dilation), and
//    multiplies them in a register-tiled loop the compiler vectorises.
// float32 accumulation for float16/bfloat16/float32, float64 for float64.
#include <algorithm>
#include <vector>

#include "../core/element.h"
#include "conv_problem_cpu.h"
#include "thread_pool.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

// Gathered rows of one block stay about this size (per item), so they sit in
// L2 while the GEMM reads them.
constexpr std::int64_t kBlockBytes = 192 * 1024;

// c[i][j] += sum_p g[p][i] * x[p][j] for i < m, j < n: MR x NR tiles of
// accumulators in registers, each summed over p in order.
template <class A, int MR, int NR>
void gemm_tn(std::int64_t np, std::int64_t m, std::int64_t n, const A* g, std::int64_t ldg, const A* x,
             std::int64_t ldx, A* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + MR <= m; i += MR) {
    std::int64_t j = 0;
    for (; j + NR <= n; j += NR) {
      A acc[MR][NR];
      for (int r = 0; r < MR; ++r)
        for (int q = 0; q < NR; ++q) acc[r][q] = c[(i + r) * ldc + j + q];
      for (std::int64_t p = 0; p < np; ++p) {
        const A* xr = x + p * ldx + j;
        const A* gr = g + p * ldg + i;
        for (int r = 0; r < MR; ++r) {
          const A gv = gr[r];
          for (int q = 0; q < NR; ++q) acc[r][q] += gv * xr[q];
        }
      }
      for (int r = 0; r < MR; ++r)
        for (int q = 0; q < NR; ++q) c[(i + r) * ldc + j + q] = acc[r][q];
    }
    for (; j < n; ++j) {
      for (int r = 0; r < MR; ++r) {
        A acc = c[(i + r) * ldc + j];
        for (std::int64_t p = 0; p < np; ++p) acc += g[p * ldg + i + r] * x[p * ldx + j];
        c[(i + r) * ldc + j] = acc;
      }
    }
  }
  for (; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      A acc = c[i * ldc + j];
      for (std::int64_t p = 0; p < np; ++p) acc += g[p * ldg + i] * x[p * ldx + j];
      c[i * ldc + j] = acc;
    }
  }
}

// Reads one channel row of a view as A.
template <class E, class A>
void load_row(const typename E::storage* src, std::int64_t stride, std::int64_t n, A* dst) {
  if (stride == 1) {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = E::template load<A>(src[c]);
  } else {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = E::template load<A>(src[c * stride]);
  }
}

template <class A, class EX, class EY>
void weight_grad_typed(const ConvProblem& p) {
  using SX = typename EX::storage;
  using SY = typename EY::storage;
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cin = g.in_channels, cout = g.out_channels, groups = g.groups;
  const std::int64_t cig = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const std::int64_t plane = g.out[0] * g.out[1] * g.out[2];
  const std::int64_t positions = g.batch * plane;
  const std::int64_t wsize = cout * taps * cig;  // partial sums in the weight's logical layout
  std::vector<A> partial(std::size_t(kWeightGradParts * wsize), A(0));
  const std::int64_t block =
      std::clamp<std::int64_t>(kBlockBytes / std::int64_t(sizeof(A) * (cin + cout)), 8, 512);
  const bool depthwise = cig == 1 && cog == 1;
  const SX* x = static_cast<const SX*>(p.input.data);
  const SY* y = static_cast<const SY*>(p.output.data);
  const Shape5& xs = p.input.strides;
  const Shape5& ys = p.output.strides;

  parallel_for(kWeightGradParts * taps, [&](std::int64_t item_begin, std::int64_t item_end) {
    std::vector<A> gbuf(std::size_t(block * cout)), xbuf(std::size_t(block * cin));
    std::vector<A> dw_acc(depthwise ? std::size_t(cout) : 0);
    for (std::int64_t item = item_begin; item < item_end; ++item) {
      const std::int64_t part = item / taps, tap = item % taps;
      const std::int64_t k[3] = {tap / (g.kernel[1] * g.kernel[2]), tap / g.kernel[2] % g.kernel[1],
                                 tap % g.kernel[2]};
      // The stored tap this logical tap's gradient belongs to.
      std::int64_t stored = 0;
      for (int i = 0; i < 3; ++i) stored = stored * g.kernel[i] + (g.flip ? g.kernel[i] - 1 - k[i] : k[i]);
      A* dst = partial.data() + part * wsize + stored * cig;
      std::fill(dw_acc.begin(), dw_acc.end(), A(0));
      const std::int64_t m_begin = positions * part / kWeightGradParts;
      const std::int64_t m_end = positions * (part + 1) / kWeightGradParts;
      for (std::int64_t m0 = m_begin; m0 < m_end; m0 += block) {
        const std::int64_t m1 = std::min(m0 + block, m_end);
        std::int64_t rows = 0;
        for (std::int64_t m = m0; m < m1; ++m) {
          const std::int64_t n = m / plane, r = m % plane;
          const std::int64_t o[3] = {r / (g.out[1] * g.out[2]), r / g.out[2] % g.out[1], r % g.out[2]};
          std::int64_t xoff = n * xs[0];
          bool real = true;
          for (int i = 0; i < 3 && real; ++i) {
            const std::int64_t j = o[i] * g.stride[i] - g.padding_lo[i] + k[i] * g.kernel_dilation[i];
            const std::int64_t idil = g.input_dilation[i];
            if (j < 0 || j % idil != 0 || j / idil >= g.in[i]) real = false;
            else xoff += j / idil * xs[i + 1];
          }
          if (!real) continue;
          const std::int64_t yoff = n * ys[0] + o[0] * ys[1] + o[1] * ys[2] + o[2] * ys[3];
          load_row<EY>(y + yoff, ys[4], cout, gbuf.data() + rows * cout);
          load_row<EX>(x + xoff, xs[4], cin, xbuf.data() + rows * cin);
          ++rows;
        }
        if (rows == 0) continue;
        if (depthwise) {
          // One channel per group: the groups side by side in the vector lanes.
          for (std::int64_t q = 0; q < rows; ++q) {
            const A* gr = gbuf.data() + q * cout;
            const A* xr = xbuf.data() + q * cin;
            for (std::int64_t c = 0; c < cout; ++c) dw_acc[c] += gr[c] * xr[c];
          }
          continue;
        }
        constexpr int NR = sizeof(A) == 4 ? 16 : 8;
        for (std::int64_t grp = 0; grp < groups; ++grp)
          gemm_tn<A, 4, NR>(rows, cog, cig, gbuf.data() + grp * cog, cout, xbuf.data() + grp * cig, cin,
                            dst + grp * cog * taps * cig, taps * cig);
      }
      if (depthwise) {
        for (std::int64_t c = 0; c < cout; ++c) dst[c * taps] = dw_acc[c];
      }
    }
  });

  // dW = sum of the parts in part order; written through the result's strides.
  const std::int64_t kk = g.kernel[1] * g.kernel[2];
  const Shape5& rs = p.result.strides;
  parallel_for(cout * taps, [&](std::int64_t begin, std::int64_t end) {
    visit_dtype(p.result.dtype, [&](auto e) {
      using ER = decltype(e);
      auto* r = static_cast<typename ER::storage*>(p.result.data);
      for (std::int64_t row = begin; row < end; ++row) {
        const std::int64_t co = row / taps, tap = row % taps;
        const std::int64_t off =
            co * rs[0] + tap / kk * rs[1] + tap / g.kernel[2] % g.kernel[1] * rs[2] + tap % g.kernel[2] * rs[3];
        for (std::int64_t ci = 0; ci < cig; ++ci) {
          A sum = partial[std::size_t(row * cig + ci)];
          for (std::int64_t part = 1; part < kWeightGradParts; ++part)
            sum += partial[std::size_t(part * wsize + row * cig + ci)];
          r[off + ci * rs[4]] = ER::template store<A>(sum);
        }
      }
    });
  });
}

}  // namespace

void run_weight_grad(const ConvProblem& p) {
  const bool f64 = p.result.dtype == DType::float64;
  visit_dtype(p.input.dtype, [&](auto ex) {
    visit_dtype(p.output.dtype, [&](auto ey) {
      if (f64)
        weight_grad_typed<double, decltype(ex), decltype(ey)>(p);
      else
        weight_grad_typed<float, decltype(ex), decltype(ey)>(p);
    });
  });
}

}  // namespace volconv::cpu
