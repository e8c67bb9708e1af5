// The AVX-512F kernel set (compiled with -mavx512f -mavx512bw -mavx512vl
// -mfma -mf16c). Tiles: NR = 16/32/48/64 channels; MR is as large as the 32
// zmm registers allow (MR x NV accumulators + NV weights + 1 broadcast) while
// the MR row pointers still fit the 15 general-purpose registers.
#include "f32-conv-cin1.h"
#include "f32-conv-small-cout.h"
#include "f32-dwconv.h"
#include "fma-probe.h"
#include "f32-igemm.h"
#include "f32-winograd.h"
#include "tile-io.h"
#include "vec-avx512f.h"

namespace volconv::cpu {

const KernelTable* kernels_avx512f() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = "avx512f";
    t.n_f32_igemm = 4;
    t.f32_igemm[0] = {8, 16, f32_igemm<VecAvx512f, 8, 1>, "f32-igemm-8x16-avx512f"};
    t.f32_igemm[1] = {8, 32, f32_igemm<VecAvx512f, 8, 2>, "f32-igemm-8x32-avx512f"};
    t.f32_igemm[2] = {8, 48, f32_igemm<VecAvx512f, 8, 3>, "f32-igemm-8x48-avx512f"};
    t.f32_igemm[3] = {6, 64, f32_igemm<VecAvx512f, 6, 4>, "f32-igemm-6x64-avx512f"};
    t.f32_gemm[0] = {16, 16, f32_igemm<VecAvx512f, 16, 1, 16>, "f32-gemm-16x16-avx512f"};
    t.f32_gemm[1] = {12, 32, f32_igemm<VecAvx512f, 12, 2, 12>, "f32-gemm-12x32-avx512f"};
    t.f32_gemm[2] = {8, 48, f32_igemm<VecAvx512f, 8, 3, 8>, "f32-gemm-8x48-avx512f"};
    t.f32_gemm[3] = {6, 64, f32_igemm<VecAvx512f, 6, 4, 6>, "f32-gemm-6x64-avx512f"};
    t.f32_dwconv = {64, f32_dwconv<VecAvx512f, 6, 4, 8>, "f32-dwconv-6x64-avx512f"};
    t.f32_conv_cin1 = {16, f32_conv_cin1<VecAvx512f, 16, 1>, "f32-conv-cin1-16x16-avx512f"};
    t.f32_conv_small_cout[0] = {1, f32_conv_small_cout<VecAvx512f, 8, 1>, "f32-conv-cout1-8x1-avx512f"};
    t.f32_conv_small_cout[1] = {2, f32_conv_small_cout<VecAvx512f, 8, 2>, "f32-conv-cout2-8x2-avx512f"};
    t.f32_conv_small_cout[2] = {3, f32_conv_small_cout<VecAvx512f, 8, 3>, "f32-conv-cout3-8x3-avx512f"};
    t.f32_conv_small_cout[3] = {4, f32_conv_small_cout<VecAvx512f, 6, 4>, "f32-conv-cout4-6x4-avx512f"};
    t.winograd_input = f32_winograd_input<VecAvx512f>;
    t.winograd_output = f32_winograd_output<VecAvx512f>;
    t.store_tile = store_tile<VecAvx512f>;
    t.convert_row = convert_row<VecAvx512f>;
    t.fma_probe = fma_probe<VecAvx512f, 24>;
    return t;
  }();
  return &table;
}

}  // namespace volconv::cpu
