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
//    multiplies them in a register-tiled loop (wgrad_gemm.h) for the ISA.
//  - Both operands bf16 on an avx512bf16 CPU where vdpbf16ps outruns FMA
//    (wgrad_bf16_choice.cpp): the rows are gathered as bf16 pairs of
//    positions and multiplied on vdpbf16ps (wgrad_bf16_dot.h).
// float32 accumulation for float16/bfloat16/float32, float64 for float64.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "conv_problem_cpu.h"
#include "padding_map.h"
#include "thread_pool.h"
#include "volconv/cpu.h"
#include "wgrad_bf16_dot.h"
#include "wgrad_common.h"
#include "wgrad_gemm.h"
#include "../core/workspace.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

using wgrad_common::gemm_of;
using wgrad_common::kBlockBytes;
using wgrad_common::load_row;

template <class A> WgradDepthwise<A> depthwise_of(const WgradKernels& k);
template <> WgradDepthwise<float> depthwise_of<float>(const WgradKernels& k) { return k.depthwise_f32; }
template <> WgradDepthwise<double> depthwise_of<double>(const WgradKernels& k) { return k.depthwise_f64; }

// Only bf16 with bf16 and float32 sums can take the dot GEMM
// (wgrad_bf16_dot_for says where it does).
template <class A, class EX, class EY>
constexpr bool kBf16Pairs = std::is_same_v<A, float> && std::is_same_v<EX, Element<DType::bfloat16>> &&
                            std::is_same_v<EY, Element<DType::bfloat16>>;

template <class A, class EX, class EY>
void weight_grad_typed(const ConvProblem& p, const WgradBf16Kernel* dot) {
  using SX = typename EX::storage;
  using SY = typename EY::storage;
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cin = g.in_channels, cout = g.out_channels, groups = g.groups;
  const std::int64_t cig = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const std::int64_t plane = g.out[0] * g.out[1] * g.out[2];
  const std::int64_t positions = g.batch * plane;
  const std::int64_t wsize = cout * taps * cig;  // partial sums in the weight's logical layout
  std::vector<A> partial =
      detail::workspace(std::size_t(kWeightGradParts * wsize), "the weight gradient's partial sums", A(0));
  const std::int64_t block =
      std::clamp<std::int64_t>(kBlockBytes / std::int64_t(sizeof(A) * (cin + cout)), 32, 512);
  const bool depthwise = cig == 1 && cog == 1;
  const WgradGemm<A> gemm = gemm_of<A>(wgrad_kernels_active());
  const WgradDepthwise<A> depthwise_acc = depthwise_of<A>(wgrad_kernels_active());
  const SX* x = static_cast<const SX*>(p.input.data);
  const SY* y = static_cast<const SY*>(p.output.data);
  const Shape5& xs = p.input.strides;
  const Shape5& ys = p.output.strides;

  parallel_for(kWeightGradParts * taps, [&](std::int64_t item_begin, std::int64_t item_end) {
    std::vector<A> gbuf(dot ? 0 : std::size_t(block * cout)), xbuf(dot ? 0 : std::size_t(block * cin));
    // bf16 pairs of positions (wgrad_bf16_dot.h): a word per two rows' values
    const std::size_t pair_rows = dot ? std::size_t((block + 1) / 2) : 0;
    std::vector<std::uint32_t> gpair(pair_rows * std::size_t(cout)), xpair(pair_rows * std::size_t(cin));
    std::int64_t first_y = 0, first_x = 0;  // the first row of the pair being gathered
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
        // Position m0's coordinates by division once; then counted up.
        std::int64_t n = m0 / plane, o[3] = {m0 % plane / (g.out[1] * g.out[2]), m0 % plane / g.out[2] % g.out[1],
                                              m0 % plane % g.out[2]};
        for (std::int64_t m = m0; m < m1; ++m) {
          std::int64_t xoff = n * xs[0];
          bool real = true;
          for (int i = 0; i < 3 && real; ++i) {
            std::int64_t j = o[i] * g.stride[i] - g.padding_lo[i] + k[i] * g.kernel_dilation[i];
            const std::int64_t idil = g.input_dilation[i];
            if (idil != 1) {
              if (j < 0 || j % idil != 0) real = false;
              j /= idil;
            }
            if (j < 0 || j >= g.in[i]) j = padded_source(g.padding_mode[i], g.in[i], j);  // -1: a zero
            if (j < 0) real = false;
            else xoff += j * xs[i + 1];
          }
          if (real) {
            const std::int64_t yoff = n * ys[0] + o[0] * ys[1] + o[1] * ys[2] + o[2] * ys[3];
            if (!dot) {
              load_row<EY>(y + yoff, ys[4], cout, gbuf.data() + rows * cout);
              load_row<EX>(x + xoff, xs[4], cin, xbuf.data() + rows * cin);
            } else if constexpr (kBf16Pairs<A, EX, EY>) {
              if (rows % 2 == 0) {  // packed when its second row comes (or at the block's end)
                first_y = yoff;
                first_x = xoff;
              } else {
                pack_pair_rows(y + first_y, y + yoff, ys[4], cout, gpair.data() + rows / 2 * cout);
                pack_pair_rows(x + first_x, x + xoff, xs[4], cin, xpair.data() + rows / 2 * cin);
              }
            }
            ++rows;
          }
          if (++o[2] == g.out[2]) {
            o[2] = 0;
            if (++o[1] == g.out[1]) {
              o[1] = 0;
              if (++o[0] == g.out[0]) {
                o[0] = 0;
                ++n;
              }
            }
          }
        }
        if (rows == 0) continue;
        if constexpr (kBf16Pairs<A, EX, EY>) {
          if (dot) {
            if (rows % 2 == 1) {  // an odd count's last row: a pair with zeros
              pack_pair_rows(y + first_y, nullptr, ys[4], cout, gpair.data() + rows / 2 * cout);
              pack_pair_rows(x + first_x, nullptr, xs[4], cin, xpair.data() + rows / 2 * cin);
            }
            for (std::int64_t grp = 0; grp < groups; ++grp)
              dot->gemm((rows + 1) / 2, cog, cig, gpair.data() + grp * cog, cout, xpair.data() + grp * cig, cin,
                        dst + grp * cog * taps * cig, taps * cig);
            continue;
          }
        }
        if (depthwise) {
          depthwise_acc(rows, cout, gbuf.data(), xbuf.data(), dw_acc.data());
          continue;
        }
        for (std::int64_t grp = 0; grp < groups; ++grp)
          gemm(rows, cog, cig, gbuf.data() + grp * cog, cout, xbuf.data() + grp * cig, cin,
                            dst + grp * cog * taps * cig, taps * cig);
      }
      if (depthwise) {
        for (std::int64_t c = 0; c < cout; ++c) dst[c * taps] = dw_acc[c];
      }
    }
  });

  wgrad_common::reduce_parts(p, partial);
}

}  // namespace

namespace wgrad_common {

template <class A>
void reduce_parts(const ConvProblem& p, const std::vector<A>& partial) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cout = g.out_channels, cig = g.in_channels_per_group();
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  const std::int64_t wsize = cout * taps * cig;
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
template void reduce_parts<float>(const ConvProblem&, const std::vector<float>&);
template void reduce_parts<double>(const ConvProblem&, const std::vector<double>&);

}  // namespace wgrad_common

// AVX-512F under the avx512 kernel sets, AVX2 + FMA under avx2, NEON's
// wider tile under neon.
const WgradKernels& wgrad_kernels_active() {
#if defined(__aarch64__)
  if (active_isa() == "neon") return wgrad_kernels_neon();
#endif
#if defined(VOLCONV_WGRAD_AVX512)
  if (active_isa().compare(0, 6, "avx512") == 0) return wgrad_kernels_avx512f();
#endif
#if defined(VOLCONV_WGRAD_AVX2)
  if (active_isa().compare(0, 3, "avx") == 0) return wgrad_kernels_avx2();
#endif
  return wgrad_kernels_generic();
}

const WgradBf16Kernel* wgrad_bf16_dot_for(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  const bool depthwise = g.in_channels_per_group() == 1 && g.out_channels_per_group() == 1;
  const bool pairs = p.input.dtype == DType::bfloat16 && p.output.dtype == DType::bfloat16 &&
                     p.result.dtype != DType::float64;
  return pairs && !depthwise ? wgrad_bf16_dot_active() : nullptr;
}

void run_weight_grad(const ConvProblem& p) {
  const bool f64 = p.result.dtype == DType::float64;
  visit_dtype(p.input.dtype, [&](auto ex) {
    visit_dtype(p.output.dtype, [&](auto ey) {
      using EX = decltype(ex);
      using EY = decltype(ey);
      if (f64) {
        testing::set_last_wgrad_kernel(wgrad_kernels_active().name);
        weight_grad_typed<double, EX, EY>(p, nullptr);
      } else {
        const WgradBf16Kernel* dot = kBf16Pairs<float, EX, EY> ? wgrad_bf16_dot_for(p) : nullptr;
        testing::set_last_wgrad_kernel(dot ? dot->name : wgrad_kernels_active().name);
        weight_grad_typed<float, EX, EY>(p, dot);
      }
    });
  });
}

}  // namespace volconv::cpu
