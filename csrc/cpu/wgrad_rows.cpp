// The weight gradient by output rows, for few input channels per group:
//   dW[co, kd, kh, kw, ci] = sum over output rows (n, od, oh) whose input row
//   for (kd, kh) is real, and over ow, of dY[.., ow, co] * X[.., iw(ow, kw), ci].
// One work item is (part, kd, kh): it builds, per block of such rows, a small
// matrix of the input values each position reads for every (kw, ci) (KW x C_in
// columns; zeros where W's padding reads zeros) and multiplies it with dY's
// rows, read in place when they are float32 (or float64) and contiguous.
// The GEMM's vectors run over C_out and its broadcasts over the (kw, ci)
// columns, so C_in / groups = 2 fills a whole tile, which the gathered GEMM
// (conv_grad_weight.cpp, vectors over C_in) cannot; and dY is read once per
// (kd, kh) instead of once per tap.
// Positions are cut into the same kWeightGradParts fixed ranges (by whole
// rows) as the gathered GEMM's, each with its own partial sum, added in part
// order: nothing depends on the thread count, nor do the bits.
#include "wgrad_rows.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "../core/workspace.h"
#include "conv_problem_cpu.h"
#include "padding_map.h"
#include "problem_elements.h"
#include "thread_pool.h"
#include "wgrad_bf16_dot.h"
#include "wgrad_common.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

// The input index output coordinate o reads at tap k along axis i, or -1
// where it reads a zero (padding, or an inserted zero of input dilation).
std::int64_t source_index(const ConvProblemGeometry& g, int i, std::int64_t o, std::int64_t k) {
  std::int64_t j = o * g.stride[i] - g.padding_lo[i] + k * g.kernel_dilation[i];
  const std::int64_t idil = g.input_dilation[i];
  if (idil != 1) {
    if (j < 0 || j % idil != 0) return -1;
    j /= idil;
  }
  return j >= 0 && j < g.in[i] ? j : padded_source(g.padding_mode[i], g.in[i], j);
}

template <class A, class EX, class EY>
void wgrad_rows_typed(const ConvProblem& p) {
  using SX = typename EX::storage;
  using SY = typename EY::storage;
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cin = g.in_channels, cout = g.out_channels, groups = g.groups;
  const std::int64_t cig = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t kd_n = g.kernel[0], kh_n = g.kernel[1], kw_n = g.kernel[2];
  const std::int64_t taps = kd_n * kh_n * kw_n;
  const std::int64_t od_n = g.out[0], oh_n = g.out[1], ow_n = g.out[2];
  const std::int64_t rows_total = g.batch * od_n * oh_n;
  const std::int64_t wsize = cout * taps * cig;
  // Columns of one position: group-major, so a group's KW x C_in/groups
  // columns are adjacent (one GEMM per group).
  const std::int64_t cols = kw_n * cin, gcols = kw_n * cig;
  std::vector<A> partial =
      detail::workspace(std::size_t(kWeightGradParts * wsize), "the weight gradient's partial sums", A(0));
  const WgradGemm<A> gemm = wgrad_common::gemm_of<A>(wgrad_kernels_active());
  const SX* x = static_cast<const SX*>(p.input.data);
  const SY* y = static_cast<const SY*>(p.output.data);
  const Shape5& xs = p.input.strides;
  const Shape5& ys = p.output.strides;

  // Along W every row reads the same columns: wsrc[ow * KW + kw] (-1: a zero).
  std::vector<std::int64_t> wsrc(std::size_t(ow_n * kw_n));
  for (std::int64_t ow = 0; ow < ow_n; ++ow)
    for (std::int64_t kw = 0; kw < kw_n; ++kw) wsrc[std::size_t(ow * kw_n + kw)] = source_index(g, 2, ow, kw);
  // Along W, one group and no kernel dilation: the columns of position ow
  // are the padded input row's values from (ow * stride) * C_in on, KW * C_in
  // of them, so the GEMM reads the padded row itself, rows stride * C_in
  // apart (no per-position copy). Otherwise each position's columns are built.
  const bool toeplitz = groups == 1 && g.kernel_dilation[2] == 1;
  // The input's rows are runs of A (positions C_in apart): copied whole.
  const bool copy_rows = std::is_same_v<SX, A> && xs[4] == 1 && xs[3] == cin;
  const std::int64_t st = g.stride[2];
  // Positions per block: the columns (or the padded row) and dY's rows stay
  // in L1. A row longer than a block is cut along W; built columns of shorter
  // rows are taken several rows at once.
  const std::int64_t per_pos = (toeplitz ? st * cin : cols) + cout;
  const std::int64_t block =
      std::max<std::int64_t>(16, wgrad_common::kBlockBytes / std::int64_t(sizeof(A) * per_pos));
  const std::int64_t seg = std::min(ow_n, block);
  const std::int64_t rows_per_block = seg < ow_n || toeplitz ? 1 : std::max<std::int64_t>(1, block / ow_n);
  // dY read in place: its element type is A, channels adjacent, and (for
  // several rows at once) rows of one plane adjacent.
  const bool direct = std::is_same_v<SY, A> && ys[4] == 1 && (rows_per_block == 1 || ys[2] == ow_n * ys[3]);
  // The GEMM's vectors run over the longer of C_out / groups and the KW x
  // C_in / groups columns (both adjacent in memory); the other is broadcast.
  // C_in 2 -> 16 (6 columns): over C_out; 32 -> 16 (96 columns): over the
  // columns, where one AVX-512 vector of C_out would need a broadcast per FMA.
  const bool over_cols = gcols > cog;
  const std::int64_t xcap = toeplitz ? ((seg - 1) * st + kw_n) * cin : rows_per_block * seg * cols;

  parallel_for(kWeightGradParts * kd_n * kh_n, [&](std::int64_t item_begin, std::int64_t item_end) {
    std::vector<A> xbuf(static_cast<std::size_t>(xcap));
    std::vector<A> gbuf(direct ? 0 : std::size_t(rows_per_block * seg * cout));
    // [group][kw][ci][co in group], or [group][co in group][kw][ci] over_cols
    std::vector<A> acc(std::size_t(groups * gcols * cog));
    for (std::int64_t item = item_begin; item < item_end; ++item) {
      const std::int64_t part = item / (kd_n * kh_n), kd = item / kh_n % kd_n, kh = item % kh_n;
      std::fill(acc.begin(), acc.end(), A(0));
      const std::int64_t r_end = rows_total * (part + 1) / kWeightGradParts;
      for (std::int64_t r = rows_total * part / kWeightGradParts; r < r_end;) {
        const std::int64_t n = r / (od_n * oh_n), od = r / oh_n % od_n, oh = r % oh_n;
        const std::int64_t id = source_index(g, 0, od, kd);
        if (id < 0) {  // the whole plane reads a zero row
          r = std::min(r_end, r + oh_n - oh);
          continue;
        }
        if (source_index(g, 1, oh, kh) < 0) {
          ++r;
          continue;
        }
        // A run of real rows of this plane.
        std::int64_t nrows = 1;
        while (nrows < rows_per_block && r + nrows < r_end && oh + nrows < oh_n &&
               source_index(g, 1, oh + nrows, kh) >= 0)
          ++nrows;
        for (std::int64_t ow0 = 0; ow0 < ow_n; ow0 += seg) {
          const std::int64_t len = std::min(seg, ow_n - ow0);
          if (toeplitz) {
            // The padded input row under positions ow0 .. ow0 + len - 1.
            const SX* xrow = x + n * xs[0] + id * xs[1] + source_index(g, 1, oh, kh) * xs[2];
            const std::int64_t j0 = ow0 * st - g.padding_lo[2], span = (len - 1) * st + kw_n;
            // Positions outside the input (padding) one by one; the part
            // inside in one copy when the row is a run of A.
            const auto one_by_one = [&](std::int64_t t0, std::int64_t t1) {
              for (std::int64_t t = t0; t < t1; ++t) {
                const std::int64_t iw = j0 + t >= 0 && j0 + t < g.in[2]
                                            ? j0 + t
                                            : padded_source(g.padding_mode[2], g.in[2], j0 + t);
                A* d = xbuf.data() + t * cin;
                if (iw < 0)
                  std::fill(d, d + cin, A(0));
                else
                  wgrad_common::load_row<EX>(xrow + iw * xs[3], xs[4], cin, d);
              }
            };
            bool copied = false;
            const std::int64_t in_lo = std::clamp<std::int64_t>(-j0, 0, span);
            const std::int64_t in_hi = std::clamp<std::int64_t>(g.in[2] - j0, in_lo, span);
            if constexpr (std::is_same_v<SX, A>) {
              if (copy_rows) {
                one_by_one(0, in_lo);
                std::copy(xrow + (j0 + in_lo) * cin, xrow + (j0 + in_hi) * cin, xbuf.data() + in_lo * cin);
                one_by_one(in_hi, span);
                copied = true;
              }
            }
            if (!copied) one_by_one(0, span);
          } else {
            for (std::int64_t q = 0; q < nrows; ++q) {
              const SX* xrow = x + n * xs[0] + id * xs[1] + source_index(g, 1, oh + q, kh) * xs[2];
              for (std::int64_t ow = ow0; ow < ow0 + len; ++ow) {
                A* dst = xbuf.data() + (q * len + ow - ow0) * cols;
                for (std::int64_t kw = 0; kw < kw_n; ++kw) {
                  const std::int64_t iw = wsrc[std::size_t(ow * kw_n + kw)];
                  for (std::int64_t grp = 0; grp < groups; ++grp) {
                    A* d = dst + grp * gcols + kw * cig;
                    if (iw < 0)
                      std::fill(d, d + cig, A(0));
                    else
                      wgrad_common::load_row<EX>(xrow + iw * xs[3] + grp * cig * xs[4], xs[4], cig, d);
                  }
                }
              }
            }
          }
          const SY* yrow = y + n * ys[0] + od * ys[1] + oh * ys[2] + ow0 * ys[3];
          const A* gy = nullptr;
          std::int64_t ldy = 0;
          if constexpr (std::is_same_v<SY, A>) {
            gy = yrow;
            ldy = ys[3];
          }
          if (!direct) {
            for (std::int64_t q = 0; q < nrows; ++q)
              for (std::int64_t ow = 0; ow < len; ++ow)
                wgrad_common::load_row<EY>(yrow + q * ys[2] + ow * ys[3], ys[4], cout,
                                           gbuf.data() + (q * len + ow) * cout);
            gy = gbuf.data();
            ldy = cout;
          }
          const std::int64_t np = toeplitz ? len : nrows * len, ldx = toeplitz ? st * cin : cols;
          for (std::int64_t grp = 0; grp < groups; ++grp) {
            const A* xc = xbuf.data() + grp * gcols;
            A* a = acc.data() + grp * gcols * cog;
            if (over_cols)
              gemm(np, cog, gcols, gy + grp * cog, ldy, xc, ldx, a, gcols);
            else
              gemm(np, gcols, cog, xc, ldx, gy + grp * cog, ldy, a, cog);
          }
        }
        r += nrows;
      }
      // This item's taps of its part, into the weight's logical layout.
      A* dst = partial.data() + part * wsize;
      for (std::int64_t kw = 0; kw < kw_n; ++kw) {
        const std::int64_t k[3] = {kd, kh, kw};
        std::int64_t stored = 0;  // the stored tap this logical tap's gradient belongs to
        for (int i = 0; i < 3; ++i) stored = stored * g.kernel[i] + (g.flip ? g.kernel[i] - 1 - k[i] : k[i]);
        for (std::int64_t grp = 0; grp < groups; ++grp)
          for (std::int64_t ci = 0; ci < cig; ++ci) {
            const A* a = acc.data() + grp * gcols * cog;
            for (std::int64_t c = 0; c < cog; ++c)
              dst[((grp * cog + c) * taps + stored) * cig + ci] =
                  over_cols ? a[c * gcols + kw * cig + ci] : a[(kw * cig + ci) * cog + c];
          }
      }
    }
  });
  wgrad_common::reduce_parts(p, partial);
}

}  // namespace

bool wgrad_rows_applies(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  // The row matrix multiplies W's zero padding (zero columns); the skip rule
  // (conv_transpose3d's and conv_general's weight gradients) must not meet a
  // zero, 0 * NaN = NaN, so there only rows that read no W padding qualify.
  // Under the multiply rule the D and H rows it skips are set afterwards
  // (nonfinite_grad_output.h).
  const bool w_zeros_allowed = p.zero_taps == detail::ZeroTaps::multiplied || !axis_reads_padding_zero(g, 2);
  return p.op == detail::ConvOp::weight_grad && g.input_dilation[2] == 1 && w_zeros_allowed;
}

void run_wgrad_rows(const ConvProblem& p) {
  testing::set_last_wgrad_kernel(wgrad_kernels_active().name);  // bf16 too: float32 loops
  const bool f64 = p.result.dtype == DType::float64;
  visit_dtype(p.input.dtype, [&](auto ex) {
    visit_dtype(p.output.dtype, [&](auto ey) {
      if (f64)
        wgrad_rows_typed<double, decltype(ex), decltype(ey)>(p);
      else
        wgrad_rows_typed<float, decltype(ex), decltype(ey)>(p);
    });
  });
}

}  // namespace volconv::cpu
