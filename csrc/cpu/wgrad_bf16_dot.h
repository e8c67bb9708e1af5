// The weight gradient's bf16 GEMM on vdpbf16ps (AVX512_BF16), for a
// gathered GEMM whose operands are both bfloat16 (conv_grad_weight.cpp):
//   c[i][j] += sum_p g[p][i] * x[p][j], float32 c,
// two positions per instruction. The operands are packed in pairs of
// positions: word q of a column holds position 2q's bf16 bits in its low
// half and 2q + 1's in its high half. An odd count's last word has +0 in its
// high half in both operands (0 * 0 adds nothing). Packed, a gathered block
// takes 2 bytes per value, half of the float32 rows the other loops gather.
// vdpbf16ps rounds each of its two adds to float32 (round to nearest even),
// reads bf16 denormals as zero and flushes denormal results to zero
// (Intel SDM, VDPBF16PS), whatever MXCSR says.
#pragma once

#include <cstdint>

namespace volconv::detail {
struct ConvProblem;
}

namespace volconv::cpu {

// c[i][j] (i < m, j < n, rows ldc floats apart) += the sum over the word rows
// q < npairs of both halves' products of g[q * ldg + i] and x[q * ldx + j].
using WgradBf16Gemm = void (*)(std::int64_t npairs, std::int64_t m, std::int64_t n, const std::uint32_t* g,
                               std::int64_t ldg, const std::uint32_t* x, std::int64_t ldx, float* c,
                               std::int64_t ldc);

struct WgradBf16Kernel {
  WgradBf16Gemm gemm;
  const char* name;  // "bf16-wgrad-dot-6x64-avx512bf16"
};

// Only in x86-64 builds (VOLCONV_WGRAD_AVX512BF16); the CPU must have avx512_bf16.
const WgradBf16Kernel& wgrad_bf16_dot_avx512bf16();

// The same sums in portable scalar code, in vdpbf16ps's order (each word's
// high half first, one float32 rounding per add, bf16 denormals read as
// zero; denormal sums are kept): lets a CPU without AVX512_BF16 test the
// pair packing of the driver (testing::set_bf16_dot_mode).
const WgradBf16Kernel& wgrad_bf16_dot_emulated();

// The bf16 dot GEMM when the active kernel set is avx512bf16 (force_isa
// included) and vdpbf16ps outruns float32 FMAs on this CPU
// (bf16_dot_speed_ratio), else nullptr: then bf16 operands take the float32
// loops (wgrad_bf16_choice.cpp).
const WgradBf16Kernel* wgrad_bf16_dot_active();

// The dot GEMM weight-gradient problem p runs on the gathered path, or null:
// both operands bf16 with float32 sums, not depthwise (one channel per group
// on each side has no GEMM to pair), where the dot is the active choice.
// conv_grad_weight.cpp runs it; the planner reports it.
const WgradBf16Kernel* wgrad_bf16_dot_for(const detail::ConvProblem& p);

// vdpbf16ps's flops per second over float32 FMAs' on this CPU, measured once
// per process on the calling thread; 0 where the active set has no vdpbf16ps.
double bf16_dot_speed_ratio();

// Packs n values of two bf16 rows (`stride` elements apart) into n pair
// words: first's in the low halves, second's in the high halves; second
// nullptr: zero high halves (the last row of an odd count).
inline void pack_pair_rows(const std::uint16_t* first, const std::uint16_t* second, std::int64_t stride,
                           std::int64_t n, std::uint32_t* dst) {
  if (second == nullptr) {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = first[c * stride];
  } else if (stride == 1) {  // a loop the compiler vectorises (interleaving 16-bit lanes)
    for (std::int64_t c = 0; c < n; ++c) dst[c] = first[c] | std::uint32_t(second[c]) << 16;
  } else {
    for (std::int64_t c = 0; c < n; ++c) dst[c] = first[c * stride] | std::uint32_t(second[c * stride]) << 16;
  }
}

namespace testing {
// The inner loops the last weight gradient on this process ran: a
// WgradKernels name ("wgrad-avx512f") or a WgradBf16Kernel name.
const char* last_wgrad_kernel();
void set_last_wgrad_kernel(const char* name);
// Which dot GEMM wgrad_bf16_dot_active() returns: as measured (automatic),
// the vdpbf16ps kernel wherever the active set is avx512bf16 (hardware), or
// the emulation on any CPU (emulated). Tests only.
enum class Bf16DotMode { automatic, hardware, emulated };
void set_bf16_dot_mode(Bf16DotMode mode);
}  // namespace testing

}  // namespace volconv::cpu
