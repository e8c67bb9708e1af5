// The weight-gradient loops on AArch64 NEON's 32 q registers: a 6 x 16 float
// tile is 24 accumulators + 4 x vectors + 1 broadcast (the generic file's
// 4 x 8 tile would leave half the register file unused). Built only for
// aarch64; elsewhere this unit is empty.
#if defined(__aarch64__)
#include "ukernels/vec-neon.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {

const WgradKernels& wgrad_kernels_neon() {
  static const WgradKernels k{wgrad::gemm_f32<VecNeon, 6, 4>, wgrad::gemm_tn<double, 6, 8>,
                              wgrad::depthwise<float>,       wgrad::depthwise<double>,
                              wgrad::dw_wgrad_row<VecNeon>,  wgrad::dw_wgrad_row_f64,
                              "wgrad-neon"};
  return k;
}

}  // namespace volconv::cpu
#endif
