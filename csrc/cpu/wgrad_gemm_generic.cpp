// The weight-gradient loops at the baseline target (SSE2 on x86-64, NEON on
// arm64): a 4 x 8 float tile fits 16 128-bit registers.
#include "ukernels/vec-generic.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {

const WgradKernels& wgrad_kernels_generic() {
  static const WgradKernels k{wgrad::gemm_f32<VecGeneric, 4, 2>, wgrad::gemm_tn<double, 4, 4>, wgrad::depthwise<float>,
                              wgrad::depthwise<double>,
                              wgrad::dw_wgrad_row<VecGeneric>, wgrad::dw_wgrad_row_f64, "wgrad-generic"};
  return k;
}

}  // namespace volconv::cpu
