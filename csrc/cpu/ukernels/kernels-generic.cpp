// The portable kernel set: the same templates over 4-float vectors of the
// compiler's vector extension. Runs on any CPU the baseline build targets.
#include "f32-conv-cin1.h"
#include "f32-conv-small-cout.h"
#include "f32-dwconv.h"
#include "fma-probe.h"
#include "f32-igemm.h"
#include "f32-winograd.h"
#include "tile-io.h"
#include "vec-generic.h"

namespace volconv::cpu {

const KernelTable* kernels_generic() {
  static const KernelTable table = [] {
    KernelTable t{};
    t.isa = "generic";
    t.n_f32_igemm = 2;
    t.f32_igemm[0] = {4, 4, f32_igemm<VecGeneric, 4, 1>, "f32-igemm-4x4-generic"};
    t.f32_igemm[1] = {4, 8, f32_igemm<VecGeneric, 4, 2>, "f32-igemm-4x8-generic"};
    t.f32_gemm[0] = {4, 4, f32_igemm<VecGeneric, 4, 1, 4>, "f32-gemm-4x4-generic"};
    t.f32_gemm[1] = {4, 8, f32_igemm<VecGeneric, 4, 2, 4>, "f32-gemm-4x8-generic"};
    t.f32_dwconv = {8, f32_dwconv<VecGeneric, 4, 2>, "f32-dwconv-4x8-generic"};
    t.f32_conv_cin1 = {8, f32_conv_cin1<VecGeneric, 4, 2>, "f32-conv-cin1-4x8-generic"};
    t.f32_conv_small_cout[0] = {1, f32_conv_small_cout<VecGeneric, 8, 1>, "f32-conv-cout1-8x1-generic"};
    t.f32_conv_small_cout[1] = {2, f32_conv_small_cout<VecGeneric, 6, 2>, "f32-conv-cout2-6x2-generic"};
    t.f32_conv_small_cout[2] = {3, f32_conv_small_cout<VecGeneric, 4, 3>, "f32-conv-cout3-4x3-generic"};
    t.f32_conv_small_cout[3] = {4, f32_conv_small_cout<VecGeneric, 3, 4>, "f32-conv-cout4-3x4-generic"};
    t.winograd_input = f32_winograd_input<VecGeneric>;
    t.winograd_output = f32_winograd_output<VecGeneric>;
    t.store_tile = store_tile<VecGeneric>;
    t.convert_row = convert_row<VecGeneric>;
    t.fma_probe = fma_probe<VecGeneric>;
    return t;
  }();
  return &table;
}

}  // namespace volconv::cpu
