// The AVX-512F kernel sets (compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512dq -mfma -mf16c). Tiles: NR = 16/32/48/64 channels; MR is as large
// as the 32 zmm registers allow (MR x NV accumulators + NV weights + 1
// broadcast) while the MR row pointers still fit the 15 general-purpose
// registers.
//
// Two tile sets. "avx512f" was tuned on Zen 4: one 512-bit FMA per cycle, so
// every tile whose FMAs outnumber its loads runs at the FMA limit. "avx512f-
// 2fma" is for cores with two 512-bit FMA pipes (Intel server cores): at two
// FMAs and two loads per cycle an NV = 1 tile (MR broadcasts + 1 weight load
// per MR FMAs) is bound by its loads, and MR x NV accumulators must cover 2 x
// the FMA latency, so its tiles are taller (kernels_avx512f_2fma says which).
// cpu_features.cpp picks the set from the measured FMA rates (fma-rates.h).
#include "f32-conv-cin1-pairs.h"
#include "f32-conv-cin1.h"
#include "f32-conv-small-cout.h"
#include "f32-dwconv.h"
#include "f32-igemm.h"
#include "f32-winograd.h"
#include "fma-probe.h"
#include "fma-rates.h"
#include "tile-io.h"
#include "vec-avx2.h"
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
    // Up to 8 output channels a 16-lane tile leaves half its lanes idle: AVX2's
    // one-vector 12x8 row kernel, in 256-bit registers (the -2fma sets too).
    t.f32_conv_cin1_narrow = {8, f32_conv_cin1<VecAvx2, 12, 1>, "f32-conv-cin1-12x8-avx512f"};
    // Up to 4 output channels, two positions a ymm (at one 512-bit FMA a
    // cycle a zmm does no more work than a ymm).
    t.f32_conv_cin1_pairs = {4, f32_conv_cin1_pairs<VecAvx2, 16>, "f32-conv-cin1-pairs-16x4-avx512f"};
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

// Intel server cores (two 512-bit FMA pipes; chosen on a 16-core Xeon with
// AVX-512 and AMX, bench shapes at 1, 2 and 16 threads, against 10x, 12x,
// 14x and 8x tiles of each NR): NR 16 and 32 taller (12 and 14 rows: 12 and
// 28 accumulators, fewer broadcasts per FMA), NR 48 and 64 as on Zen 4 (6x64
// stayed the best direct tile for the strided and dilated shapes). The
// 14x32 tile also serves Winograd's GEMMs at any channel count
// (winograd_tall_tiles): 4x8x28x28 x 256 -> 256 1.2x over 6x64's time at 16
// threads. A 14x32 one-input-channel kernel for C_out > 16: the stem conv
// (C_in 3 -> 64, 3x7x7, stride 2) 1.3-1.55x over 16x16's time.
const KernelTable* kernels_avx512f_2fma() {
  static const KernelTable table = [] {
    KernelTable t = *kernels_avx512f();
    t.isa = "avx512f-2fma";
    t.f32_igemm[0] = {12, 16, f32_igemm<VecAvx512f, 12, 1>, "f32-igemm-12x16-avx512f"};
    t.f32_igemm[1] = {14, 32, f32_igemm<VecAvx512f, 14, 2>, "f32-igemm-14x32-avx512f"};
    t.f32_conv_cin1_wide = {32, f32_conv_cin1<VecAvx512f, 14, 2>, "f32-conv-cin1-14x32-avx512f"};
    // Up to 8 output channels, two positions a zmm: the narrow kernel's ymm
    // runs at half these cores' 512-bit FMA rate.
    t.f32_conv_cin1_pairs = {8, f32_conv_cin1_pairs<VecAvx512f, 16>, "f32-conv-cin1-pairs-16x8-avx512f"};
    t.winograd_tall_tiles = 1;
    return t;
  }();
  return &table;
}

FmaRates measure_fma_rates_avx512f() { return measure_fma_rates(fma_probe<VecAvx512f, 24>, fma_probe<VecAvx2, 12>); }

}  // namespace volconv::cpu
