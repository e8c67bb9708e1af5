// The depthwise weight gradient (groups == C_in == C_out):
//   dW[c, tap] = sum over output positions of dY[pos, c] * X[pos + tap, c],
// with the channels in the vector lanes and no GEMM at all. The output rows
// (n, od, oh) are cut into kWeightGradParts fixed ranges; a work item is one
// range x one block of channels and owns its partial sums, which it builds
// row by row in a fixed order (wgrad_gemm.h: dw_wgrad_row). The parts are
// added in order at the end, so the bits depend on nothing but the data:
// not on the thread count, not on which thread ran which item.
// Each row lists the (kd, kh) taps whose input row exists (padding and the
// inserted zeros of input dilation along D/H cost nothing); along W the
// kernel runs every kw over the positions that read inside the input.
// float16 / bfloat16 / strided rows are converted per block into a small
// per-thread cache of rows (fp32 accumulation); float64 accumulates in double.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "conv_problem_cpu.h"
#include "conv_tile.h"
#include "cpu_features.h"
#include "dw_backward.h"
#include "dw_row_cache.h"
#include "thread_pool.h"
#include "volconv/cpu.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

template <class A> DwWgradRowFn<A> row_kernel();
template <> DwWgradRowFn<float> row_kernel<float>() { return wgrad_kernels_active().dw_row_f32; }
template <> DwWgradRowFn<double> row_kernel<double>() { return wgrad_kernels_active().dw_row_f64; }

// A block of channels of one row of a view (n, d, h fixed, all W), as A:
// either in place (A storage, channels contiguous) or converted into `buf`.
template <class A, class E>
struct RowReader {
  using S = typename E::storage;
  const S* base;
  Shape5 s;
  std::int64_t width;
  bool in_place;
  const KernelTable* kt;
  std::int64_t block;  // channels a work item reads: the position stride of converted rows

  RowReader(const ConstTensorView& v, std::int64_t w, std::int64_t blk)
      : base(static_cast<const S*>(v.data)), s(v.strides), width(w),
        in_place(std::is_same_v<S, A> && v.strides[4] == 1), kt(&active_kernels()), block(blk) {}

  // Position stride of what read() returns.
  std::int64_t step() const { return in_place ? s[3] : block; }

  const A* read(std::int64_t n, std::int64_t d, std::int64_t h, std::int64_t c0, int nc, A* buf) const {
    const S* row = base + n * s[0] + d * s[1] + h * s[2] + c0 * s[4];
    if (in_place) return reinterpret_cast<const A*>(row);
    for (std::int64_t w = 0; w < width; ++w) {
      const S* src = row + w * s[3];
      A* dst = buf + w * block;
      if constexpr (std::is_same_v<A, float>) {
        if (s[4] == 1 && kt->convert_row(dst, src, nc, storage_code(E::dtype))) continue;
      }
      for (int c = 0; c < nc; ++c) dst[c] = E::template load<A>(load_any(src + c * s[4]));
    }
    return buf;
  }
};

template <class A, class EX, class EY>
void dw_weight_grad_typed(const ConvProblem& p, const std::int64_t block) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t C = g.out_channels, KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  const std::int64_t taps = KD * KH * KW, blocks = (C + block - 1) / block;
  const std::int64_t Do = g.out[0], Ho = g.out[1], rows_total = g.batch * Do * Ho;
  const std::int64_t part_size = blocks * taps * block;  // one part: [block index][tap][channel in the block]
  std::vector<A> partial(std::size_t(kWeightGradParts * part_size), A(0));
  const DwWgradRowFn<A> row_fn = row_kernel<A>();
  const RowReader<A, EX> xr(p.input, g.in[2], block);
  const RowReader<A, EY> gr(p.output, g.out[2], block);
  const std::int64_t cache_rows = 2 * KD * KH + 1;  // > the KD x KH rows of one output row

  parallel_for(kWeightGradParts * blocks, [&](std::int64_t item_begin, std::int64_t item_end) {
    std::vector<const A*> x(std::size_t(KD * KH));
    std::vector<A*> acc(std::size_t(KD * KH));
    std::vector<A> gbuf(gr.in_place ? 0 : std::size_t(g.out[2] * block));
    DwRowCache<A> cache(xr.in_place ? 1 : cache_rows, xr.in_place ? 0 : g.in[2] * block);
    for (std::int64_t item = item_begin; item < item_end; ++item) {
      const std::int64_t part = item / blocks, blk = item % blocks, c0 = blk * block;
      const int nc = int(std::min(block, C - c0));
      A* part_acc = partial.data() + part * part_size + blk * taps * block;
      cache.clear();  // a new block of channels
      const std::int64_t r_begin = rows_total * part / kWeightGradParts;
      const std::int64_t r_end = rows_total * (part + 1) / kWeightGradParts;
      for (std::int64_t row = r_begin; row < r_end; ++row) {
        const std::int64_t n = row / (Do * Ho), od = row / Ho % Do, oh = row % Ho;
        std::int64_t rows = 0;
        cache.begin_row();
        for (std::int64_t kd = 0; kd < KD; ++kd) {
          std::int64_t id = od * g.stride[0] - g.padding_lo[0] + kd * g.kernel_dilation[0];
          if (id < 0 || id % g.input_dilation[0] != 0 || (id /= g.input_dilation[0]) >= g.in[0]) continue;
          for (std::int64_t kh = 0; kh < KH; ++kh) {
            std::int64_t ih = oh * g.stride[1] - g.padding_lo[1] + kh * g.kernel_dilation[1];
            if (ih < 0 || ih % g.input_dilation[1] != 0 || (ih /= g.input_dilation[1]) >= g.in[1]) continue;
            if (xr.in_place) {
              x[std::size_t(rows)] = xr.read(n, id, ih, c0, nc, nullptr);
            } else {
              bool hit = false;
              A* buf = cache.slot((n * g.in[0] + id) * g.in[1] + ih, hit);
              x[std::size_t(rows)] = hit ? buf : xr.read(n, id, ih, c0, nc, buf);
            }
            acc[std::size_t(rows++)] = part_acc + (kd * KH + kh) * KW * block;
          }
        }
        if (rows == 0) continue;
        const A* grow = gr.read(n, od, oh, c0, nc, gbuf.data());
        row_fn(DwWgradRow<A>{rows, x.data(), grow, acc.data(), KW, g.stride[2], g.kernel_dilation[2],
                             g.padding_lo[2], g.in[2], g.out[2], xr.step(), gr.step(), block, nc});
      }
    }
  });

  // dW = the parts added in part order, each tap written to its stored
  // (flipped) place through the result's strides.
  const Shape5& rs = p.result.strides;
  visit_dtype(p.result.dtype, [&](auto e) {
    using ER = decltype(e);
    auto* r = static_cast<typename ER::storage*>(p.result.data);
    for (std::int64_t c = 0; c < C; ++c) {
      const std::int64_t blk = c / block, lane = c % block;
      for (std::int64_t t = 0; t < taps; ++t) {
        const std::int64_t k[3] = {t / (KH * KW), t / KW % KH, t % KW};
        std::int64_t off = c * rs[0];
        for (int i = 0; i < 3; ++i) off += (g.flip ? g.kernel[i] - 1 - k[i] : k[i]) * rs[i + 1];
        const std::int64_t at = (blk * taps + t) * block + lane;
        A sum = partial[std::size_t(at)];
        for (std::int64_t part = 1; part < kWeightGradParts; ++part) sum += partial[std::size_t(part * part_size + at)];
        store_any(r + off, ER::template store<A>(sum));
      }
    }
  });
}

}  // namespace

bool dw_weight_grad_applies(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  // Its row loader reads zeros outside the input: other padding modes take
  // the GEMM path, whose loader maps them (padding_map.h).
  for (const PaddingMode m : g.padding_mode)
    if (m != PaddingMode::zeros) return false;
  return p.op == detail::ConvOp::weight_grad && g.in_channels == g.groups &&
         g.out_channels == g.groups && g.input_dilation[2] == 1;
}

void run_dw_weight_grad(const ConvProblem& p, std::int64_t block) {
  const bool f64 = p.result.dtype == DType::float64;
  visit_dtype(p.input.dtype, [&](auto ex) {
    visit_dtype(p.output.dtype, [&](auto ey) {
      if (f64)
        dw_weight_grad_typed<double, decltype(ex), decltype(ey)>(p, block);
      else
        dw_weight_grad_typed<float, decltype(ex), decltype(ey)>(p, block);
    });
  });
}

}  // namespace volconv::cpu
