// What the weight gradient's GEMM drivers share (conv_grad_weight.cpp,
// wgrad_rows.cpp): the loops of the active ISA by accumulator type, a row
// reader, and the fixed-order sum of the partial sums into the result.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/conv_problem.h"
#include "../core/element.h"
#include "conv_tile.h"
#include "cpu_features.h"
#include "ukernels/ukernel.h"
#include "wgrad_gemm.h"

namespace volconv::cpu::wgrad_common {

// Gathered rows of one block stay about this size (per item), so they sit in
// L1 while every tile of the GEMM reads them (192 KiB, in L2, ran ~30% slower).
constexpr std::int64_t kBlockBytes = 32 * 1024;

template <class A> WgradGemm<A> gemm_of(const WgradKernels& k);
template <> inline WgradGemm<float> gemm_of<float>(const WgradKernels& k) { return k.gemm_f32; }
template <> inline WgradGemm<double> gemm_of<double>(const WgradKernels& k) { return k.gemm_f64; }

// Reads n channel values of a view, `stride` elements apart, as A.
template <class E, class A>
void load_row(const typename E::storage* src, std::int64_t stride, std::int64_t n, A* dst) {
  if constexpr (std::is_same_v<A, float> && E::dtype == DType::float16) {
    // A row of a vector or more: the active kernel set's conversion (F16C;
    // the scalar one was most of a float16 weight gradient's time). Exact
    // either way. (bfloat16 is a shift: inline is faster at any length.)
    if (stride == 1 && n >= 8 && active_kernels().convert_row(dst, src, n, storage_code(E::dtype))) return;
  }
  if (stride == 1) {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = E::template load<A>(src[c]);
  } else {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = E::template load<A>(src[c * stride]);
  }
}

// dW = sum of the kWeightGradParts parts (each C_out x taps x C_in/groups, in
// the weight's logical layout) in part order, written through the result's
// strides. Defined for float and double (conv_grad_weight.cpp).
template <class A>
void reduce_parts(const detail::ConvProblem& p, const std::vector<A>& partial);

}  // namespace volconv::cpu::wgrad_common
