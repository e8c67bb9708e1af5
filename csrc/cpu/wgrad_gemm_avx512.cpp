// The weight-gradient loops compiled with AVX-512F: a 6 x 64 float tile is
// 24 of the 32 zmm registers (4 more hold the x vectors, 1 the broadcast);
// the depthwise row kernel holds one 16-channel block per vector.
#include "ukernels/vec-avx512f.h"
#include "wgrad_gemm.h"

namespace volconv::cpu {

const WgradKernels& wgrad_kernels_avx512f() {
  static const WgradKernels k{wgrad::gemm_f32<VecAvx512f, 6, 4>, wgrad::gemm_tn<double, 6, 16>,
                              wgrad::depthwise<float>,          wgrad::depthwise<double>,
                              wgrad::dw_wgrad_row<VecAvx512f>,  wgrad::dw_wgrad_row_f64,
                              "wgrad-avx512f"};
  return k;
}

}  // namespace volconv::cpu
