// The AVX2 + FMA + F16C kernel set (16 ymm registers: 6x16 keeps 12
// accumulators + 2 weights + 1 broadcast).
#include "f32-conv-cin1-pairs.h"
#include "f32-conv-cin1.h"
#include "f32-conv-small-cout.h"
#include "f32-dwconv.h"
#include "fma-probe.h"
#include "f32-igemm.h"
#include "f32-winograd.h"
#include "tile-io.h"
#include "vec-avx2.h"

namespace volconv::cpu {

const KernelTable* kernels_avx2() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = "avx2";
    t.n_f32_igemm = 2;
    t.f32_igemm[0] = {8, 8, f32_igemm<VecAvx2, 8, 1>, "f32-igemm-8x8-avx2"};
    t.f32_igemm[1] = {6, 16, f32_igemm<VecAvx2, 6, 2>, "f32-igemm-6x16-avx2"};
    t.f32_gemm[0] = {8, 8, f32_igemm<VecAvx2, 8, 1, 8>, "f32-gemm-8x8-avx2"};
    t.f32_gemm[1] = {6, 16, f32_igemm<VecAvx2, 6, 2, 6>, "f32-gemm-6x16-avx2"};
    t.f32_dwconv = {16, f32_dwconv<VecAvx2, 6, 2, 8>, "f32-dwconv-6x16-avx2"};
    t.f32_conv_cin1 = {16, f32_conv_cin1<VecAvx2, 6, 2>, "f32-conv-cin1-6x16-avx2"};
    t.f32_conv_cin1_narrow = {8, f32_conv_cin1<VecAvx2, 12, 1>, "f32-conv-cin1-12x8-avx2"};
    t.f32_conv_cin1_pairs = {4, f32_conv_cin1_pairs<VecAvx2, 16>, "f32-conv-cin1-pairs-16x4-avx2"};
    t.f32_conv_small_cout[0] = {1, f32_conv_small_cout<VecAvx2, 8, 1>, "f32-conv-cout1-8x1-avx2"};
    t.f32_conv_small_cout[1] = {2, f32_conv_small_cout<VecAvx2, 6, 2>, "f32-conv-cout2-6x2-avx2"};
    t.f32_conv_small_cout[2] = {3, f32_conv_small_cout<VecAvx2, 4, 3>, "f32-conv-cout3-4x3-avx2"};
    t.f32_conv_small_cout[3] = {4, f32_conv_small_cout<VecAvx2, 3, 4>, "f32-conv-cout4-3x4-avx2"};
    t.winograd_input = f32_winograd_input<VecAvx2>;
    t.winograd_output = f32_winograd_output<VecAvx2>;
    t.store_tile = store_tile<VecAvx2>;
    t.convert_row = convert_row<VecAvx2>;
    t.fma_probe = fma_probe<VecAvx2>;
    return t;
  }();
  return &table;
}

}  // namespace volconv::cpu
