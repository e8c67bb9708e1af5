// The interface between the CPU drivers (compiled for the baseline ISA) and
// the micro-kernels (compiled once per ISA, each in its own translation unit
// with its own flags). Only plain structs and function pointers cross it, so
// no inline code compiled for one ISA can leak into another.
#pragma once

#include <cstdint>

namespace volconv::cpu {

// One MR x NR output tile of an implicit GEMM (MR output positions, NR output
// channels). K is walked tap by tap: for tap s, row r reads kc contiguous
// input elements from a[s * MR + r] (a row in the padding points at a zero
// row) against the packed weight slice at w + w_off[s].
struct IgemmParams {
  std::int64_t ks;            // taps listed in a / w_off (taps wholly in the padding are left out)
  std::int64_t kc;            // reduction length per tap
  const void* const* a;       // ks * MR row pointers (float, or bf16 bits for the dpbf16 kernels)
  const std::int64_t* w_off;  // per tap: offset of its slice in w, in packed elements
  const void* w;              // packed weights of one NR block: [tap][kc][NR] (dpbf16: [tap][kc/2][NR][2])
  float* c;                   // MR x NR fp32 tile, row stride NR
  int accumulate;             // add to c instead of overwriting it (K split into chunks)
};
using IgemmFn = void (*)(const IgemmParams&);

// Tables are plain aggregates (no default member initializers): a
// constructor would be an inline function emitted by every ISA's unit, and
// the linker may keep the AVX-512 copy for all of them.
struct IgemmKernel {
  int mr, nr;
  IgemmFn fn;
  const char* name;
};

// Depthwise (groups == C_in == C_out): one output row of wo positions x nc
// channels (nc <= NR). x[q] / w[q], q < rows: the input row (at iw = 0) and
// packed weights ([kw][channel], kw stride w_step) of the q-th (kd, kh) tap
// inside the input; both already offset to the block's first channel.
// Along W: input width `width`, step x_step floats per position; output
// position ow at y + ow * y_step.
struct DwconvParams {
  std::int64_t rows;
  const float* const* x;
  const float* const* w;
  std::int64_t kw, stride, dilation, pad, width, x_step, w_step;
  float* y;
  std::int64_t wo, y_step;
  int nc;
  int stream;  // non-temporal stores where aligned (see TileStore::stream)
  // Small-C_out kernels only: input channels per tap (x[q] and w[q] then
  // start at the group's channel 0; w_step is each output channel's run).
  std::int64_t cin;
};
using DwconvFn = void (*)(const DwconvParams&);

struct DwconvKernel {
  int nr;  // channels per call
  DwconvFn fn;
  const char* name;
};

// Winograd F(2x2x2, 3x3x3) (f32-winograd.h). Input transform: x[i], i =
// (a * 4 + b) * 4 + c, is the 4x4x4 patch's input row at (D, H, W) offset
// (a, b, c) (a zero row in the padding), cin floats; transformed row p goes
// to u + p * u_step.
struct WinogradInputParams {
  const float* const* x;
  std::int64_t cin;
  float* u;
  std::int64_t u_step;
};
// Output transform: the 64 GEMM results m + p * m_step (nr floats each, nr a
// multiple of the vector length) -> outputs (z, y, x) at y + ((z * 2 + y) *
// 2 + x) * nr.
struct WinogradOutputParams {
  const float* m;
  std::int64_t m_step;
  int nr;
  float* y;
};
// Both return 0 when every value they wrote is finite, else NaN.
using WinogradInputFn = float (*)(const WinogradInputParams&);
using WinogradOutputFn = float (*)(const WinogradOutputParams&);

// Storage codes shared by the store / convert helpers below.
enum StorageCode : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

// Writes mr rows of nc fp32 values (row stride ldc) to rows[r], whose channel
// stride is 1, converting to `storage`. Returns false when this ISA has no
// vector conversion for `storage` (the caller then converts in scalar code).
struct TileStore {
  const float* c;
  int ldc, mr, nc;
  void* const* rows;
  int storage;
  // Bypass the caches for whole aligned vectors (an output far larger than
  // the caches: the write then costs no read of the line it replaces).
  int stream;
};
using StoreTileFn = bool (*)(const TileStore&);

// dst[0..n) = float(src[0..n)) for contiguous src of `storage`; false when
// this ISA has no vector conversion for it.
using ConvertRowFn = bool (*)(float* dst, const void* src, std::int64_t n, int storage);

// Everything one ISA offers. Kernels of a family are listed by increasing NR.
struct KernelTable {
  const char* isa;
  int n_f32_igemm;
  IgemmKernel f32_igemm[4];
  IgemmKernel f32_gemm[4];  // same NR as f32_igemm[i] (MR may differ), A a k-major packed panel
  int n_bf16_igemm;  // vdpbf16ps kernels (avx512bf16 only)
  IgemmKernel bf16_igemm[4];
  DwconvKernel f32_dwconv;
  // The few-input-channel row kernels (groups 1, f32-conv-cin1.h): the set's
  // own, and optionally (fn null if not) a narrow one for C_out <= its NR (the
  // own tile's second vector would multiply zero weights) and a wide one for
  // C_out > the own NR. choose_cin1 (conv3d_plan.cpp) picks.
  DwconvKernel f32_conv_cin1;
  DwconvKernel f32_conv_cin1_narrow;
  DwconvKernel f32_conv_cin1_wide;
  // Optional (fn null if not): up to nr output channels at W stride 1, two
  // positions a vector on channel-planar rows (f32-conv-cin1-pairs.h); the
  // planner prefers it to the narrow kernel where it applies.
  DwconvKernel f32_conv_cin1_pairs;
  DwconvKernel f32_conv_small_cout[4];  // [nc - 1]: 1-4 output channels per group (f32-conv-small-cout.h)
  WinogradInputFn winograd_input;    // f32-winograd.h
  // Winograd's GEMMs take the tallest f32_igemm tile of those wasting the
  // fewest channels (not the widest): its weights are streamed once per
  // point and unit, so rows per weight load count most (the -2fma sets).
  int winograd_tall_tiles;
  WinogradOutputFn winograd_output;
  StoreTileFn store_tile;
  ConvertRowFn convert_row;
  // Peak probes for the benchmark: run `iters` rounds of independent FMA
  // (or vdpbf16ps) chains in registers; return the flops done. bf16 may be null.
  double (*fma_probe)(std::int64_t iters);
  double (*bf16_probe)(std::int64_t iters);
};

// One per ISA translation unit; nullptr where the ISA was not compiled in
// (e.g. avx512 on aarch64).
const KernelTable* kernels_generic();
const KernelTable* kernels_avx2();
const KernelTable* kernels_avx512f();
const KernelTable* kernels_avx512bf16();
const KernelTable* kernels_neon();
// The AVX-512 sets' tiles for cores with two 512-bit FMA pipes (kernels-avx512f.cpp).
const KernelTable* kernels_avx512f_2fma();
const KernelTable* kernels_avx512bf16_2fma();

// One thread's FMA throughput at 512 and at 256 bits (fma-rates.h), GFLOP/s;
// zeros where AVX-512 was not compiled in.
struct FmaRates {
  double wide_gflops, narrow_gflops;
};
FmaRates measure_fma_rates_avx512f();

}  // namespace volconv::cpu
