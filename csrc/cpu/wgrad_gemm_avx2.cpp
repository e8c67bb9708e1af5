// The weight-gradient loops compiled with AVX2 + FMA: a 6 x 16 float tile is
// 12 of the 16 ymm registers.
#include "ukernels/vec-avx2.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {

const WgradKernels& wgrad_kernels_avx2() {
  static const WgradKernels k{wgrad::gemm_f32<VecAvx2, 6, 2>, wgrad::gemm_tn<double, 6, 8>, wgrad::depthwise<float>,
                              wgrad::depthwise<double>,
                              wgrad::dw_wgrad_row<VecAvx2>, wgrad::dw_wgrad_row_f64, "wgrad-avx2"};
  return k;
}

}  // namespace volconv::cpu
