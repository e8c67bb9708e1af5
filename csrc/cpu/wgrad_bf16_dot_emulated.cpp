// The bf16 dot GEMM of wgrad_bf16_dot.h in portable scalar code, for tests
// on CPUs without AVX512_BF16 (slow: one lane at a time).
#include <cstring>

#include "wgrad_bf16_dot.h"

namespace volconv::cpu {
namespace {

// A bf16 value as float32; a denormal reads as a zero of its sign (DAZ).
float bf16_daz(std::uint32_t bits) {
  std::uint32_t u = (bits & 0xffffu) << 16;
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

void bf16_wgrad_dot_emulated(std::int64_t npairs, std::int64_t m, std::int64_t n, const std::uint32_t* g,
                             std::int64_t ldg, const std::uint32_t* x, std::int64_t ldx, float* c,
                             std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      float acc = c[i * ldc + j];
      for (std::int64_t q = 0; q < npairs; ++q) {
        const std::uint32_t gw = g[q * ldg + i], xw = x[q * ldx + j];
        // bf16 products are exact in float32: one rounding per add, fused or not
        acc += bf16_daz(gw >> 16) * bf16_daz(xw >> 16);
        acc += bf16_daz(gw) * bf16_daz(xw);
      }
      c[i * ldc + j] = acc;
    }
}

}  // namespace

const WgradBf16Kernel& wgrad_bf16_dot_emulated() {
  static const WgradBf16Kernel k{bf16_wgrad_dot_emulated, "bf16-wgrad-dot-emulated"};
  return k;
}

}  // namespace volconv::cpu
