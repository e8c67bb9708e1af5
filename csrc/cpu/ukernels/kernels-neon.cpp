// The AArch64 NEON kernel set (32 q registers: 6x16 keeps 24 accumulators +
// 4 weights + 1 broadcast). Built only for aarch64 (Apple silicon); other
// targets get a table-less stub.
#include "ukernel.h"

#if defined(__aarch64__)
#include "f32-conv-cin1.h"
#include "f32-conv-small-cout.h"
#include "f32-dwconv.h"
#include "fma-probe.h"
#include "f32-igemm.h"
#include "f32-winograd.h"
#include "tile-io.h"
#include "vec-neon.h"

namespace volconv::cpu {

const KernelTable* kernels_neon() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = "neon";
    t.n_f32_igemm = 3;
    t.f32_igemm[0] = {8, 4, f32_igemm<VecNeon, 8, 1>, "f32-igemm-8x4-neon"};
    t.f32_igemm[1] = {8, 8, f32_igemm<VecNeon, 8, 2>, "f32-igemm-8x8-neon"};
    t.f32_igemm[2] = {6, 16, f32_igemm<VecNeon, 6, 4>, "f32-igemm-6x16-neon"};
    t.f32_gemm[0] = {8, 4, f32_igemm<VecNeon, 8, 1, 8>, "f32-gemm-8x4-neon"};
    t.f32_gemm[1] = {8, 8, f32_igemm<VecNeon, 8, 2, 8>, "f32-gemm-8x8-neon"};
    t.f32_gemm[2] = {6, 16, f32_igemm<VecNeon, 6, 4, 6>, "f32-gemm-6x16-neon"};
    t.f32_dwconv = {16, f32_dwconv<VecNeon, 6, 4, 8>, "f32-dwconv-6x16-neon"};
    t.f32_conv_cin1 = {8, f32_conv_cin1<VecNeon, 12, 2>, "f32-conv-cin1-12x8-neon"};
    t.f32_conv_small_cout[0] = {1, f32_conv_small_cout<VecNeon, 8, 1>, "f32-conv-cout1-8x1-neon"};
    t.f32_conv_small_cout[1] = {2, f32_conv_small_cout<VecNeon, 8, 2>, "f32-conv-cout2-8x2-neon"};
    t.f32_conv_small_cout[2] = {3, f32_conv_small_cout<VecNeon, 8, 3>, "f32-conv-cout3-8x3-neon"};
    t.f32_conv_small_cout[3] = {4, f32_conv_small_cout<VecNeon, 6, 4>, "f32-conv-cout4-6x4-neon"};
    t.winograd_input = f32_winograd_input<VecNeon>;
    t.winograd_output = f32_winograd_output<VecNeon>;
    t.store_tile = store_tile<VecNeon>;
    t.convert_row = convert_row<VecNeon>;
    t.fma_probe = fma_probe<VecNeon, 24>;
    return t;
  }();
  return &table;
}

}  // namespace volconv::cpu
#else
namespace volconv::cpu {
const KernelTable* kernels_neon() { return nullptr; }
}  // namespace volconv::cpu
#endif
