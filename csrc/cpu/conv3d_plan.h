// The CPU backend's planner: a pure function from a validated call, the
// active kernel table and the cache sizes to a plan (path, kernel, tile, K
// chunking, work order, streaming) that the drivers execute as given.
// Internal: not installed. Tests ask the planner through cpu::testing below
// instead of re-implementing its choices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/conv_problem.h"
#include "platform.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {

enum class CpuPath {
  direct,     // float64: a plain loop accumulating in float64
  dwconv,     // depthwise, f32 input: channel-vectorised row kernel
  few_cin,    // C_in <= 4 (<= 8 at C_out 5-8 with a narrow kernel), groups 1, f32 input: row kernel with
              // C_out in the lanes, a row per (kd, kh, ci)
  small_cout, // C_out per group <= 4, C_in per group >= 2, f32 input: row kernel with the reduction in the lanes
  igemm,      // implicit GEMM reading the input in place (f32; bf16 x bf16 on vdpbf16ps)
  fold_w,     // f32, groups 1, small C_in: the W window x C_in folded into K
  small_cin,  // C_in per group <= 4: taps folded into K, A gathered k-major
  packed_a,   // anything else: rows gathered and converted to f32 per tile
  winograd,   // f32, 3x3x3, stride and dilation 1, wide channels: F(2x2x2, 3x3x3) with igemm GEMMs
};
const char* path_name(CpuPath path);

struct CpuPlan {
  CpuPath path = CpuPath::direct;
  // igemm family: the kernel that runs (small-cin: an f32_gemm kernel with
  // the NR of f32_igemm[tile], whose packing it shares).
  IgemmKernel igemm{};
  int tile = 0;             // index in the kernel's family
  bool bf16_pairs = false;  // igemm on bf16 pairs (vdpbf16ps)
  DwconvKernel rows{};      // dwconv / few-cin / small-cout: the row kernel
  const char* kernel = "";  // the kernel's name ("" for direct)
  int mr = 0, nr = 0;       // tile: output positions x output channels
  // K is split into k_chunks chunks of chunk_taps taps (1: one pass); each
  // chunk resumes from the tile's stored partial sums, so chunking never
  // changes the order of a sum.
  std::int64_t k_chunks = 1, chunk_taps = 0;
  bool m_outer = false;     // direct igemm: every NR block per M tile (panels fit in L2)
  // direct igemm: consecutive NR blocks run per M tile on one indirection
  // (all of them when m_outer), as many as fit in L2 together.
  std::int64_t block_group = 1;
  std::int64_t h_block = 0; // row drivers: output rows along H per block
  std::int64_t row_slots = 0;  // row drivers: converted input rows each thread keeps (float_rows.h)
  // few-cin on the pairs kernel: the length of its channel-planar input rows
  // (cin1_pairs_row_length; 0: the rows are read as they are)
  std::int64_t planar_row = 0;
  std::int64_t unit_tiles = 0;  // winograd: 2x2x2 output tiles per work unit
  bool stream = false;      // non-temporal stores for the output
  // The fused epilogue the drivers apply at the tile (row) store.
  bool bias = false, residual = false;
  Activation activation = Activation::none;
  // "igemm:f32-igemm-6x16-avx2", "dwconv:f32-dwconv-6x16-avx2", "direct";
  // an epilogue adds "+bias", "+relu" (the activation), "+residual".
  std::string describe() const;
};

// allow_winograd false: the plan the call gets without the winograd path
// (conv3d's fallback when an inf or NaN turns up, see conv3d_winograd.h).
CpuPlan plan_conv3d(const detail::ConvCall& call, const KernelTable& kt, const platform::CacheSizes& caches,
                    bool allow_winograd = true);

// The general convolution's problems (csrc/core/conv_problem.h): which
// driver runs a data problem or a weight gradient.
enum class ProblemPath {
  phases,          // data: one forward conv3d per stride phase (conv3d's own plan each)
  dw_data,         // data, depthwise, every dtype: row kernel, all phases in one pass
  gemm_wgrad,      // weight gradient: GEMM over positions, fixed partial sums
  dw_weight_grad,  // weight gradient, depthwise, input not dilated along W: channels in the lanes
  rows_wgrad,      // weight gradient, few C_in per group: by output rows, vectors over C_out
};
const char* problem_path_name(ProblemPath path);

struct ProblemPlan {
  ProblemPath path = ProblemPath::phases;
  const char* kernel = "";  // dw_data: the row kernel ("f64-loops" for float64); weight gradients: the loops' ISA
  std::int64_t h_block = 0;  // dw_data: output rows along H per block (the KD input planes' slab stays in L2)
  // dw_data: channels a row-kernel call takes (dw_data_channel_block);
  // dw_weight_grad: channels a work item takes (dw_wgrad_channel_block).
  std::int64_t channel_block = 0;
  bool concurrent = false;   // phases: all at once, one per thread (conv_phases.cpp)
  std::string describe() const;  // "dw-data:f32-dwconv-6x16-avx2", "phases+concurrent"
};

// threads: the pool's size the problem will run on.
ProblemPlan plan_problem(const detail::ConvProblem& problem, const KernelTable& kt, int threads);

// Channels a depthwise row kernel call takes (f32-dwconv.h) along a W axis
// of this stride, dilation and window: up to 64, at least the kernel's
// kernel_nr, where its W-blocked tiles run (stride 1, no dilation, a window
// 3 or 5 wide), so each tile walks a position's whole channel run; else
// kernel_nr (the other tiles need exactly that many).
std::int64_t dwconv_block(std::int64_t kernel_nr, std::int64_t channels, std::int64_t stride, std::int64_t dilation,
                          std::int64_t window);

// Channels a depthwise weight gradient's work item takes: 64 or 32 where the
// kWeightGradParts x blocks items still give every one of `threads` threads
// two, else 16; never more than the channels rounded up to 16. The bits do
// not depend on it (each channel's sums keep their order).
std::int64_t dw_wgrad_channel_block(std::int64_t channels, int threads);

// The channel-planar rows of the pairs kernel (f32-conv-cin1-pairs.h): W
// padding and slack included, in floats per input channel.
std::int64_t cin1_pairs_row_length(const ConvGeometry& g);

// The cache sizes plans use: the detected ones, unless a test overrides them.
platform::CacheSizes planning_caches();

// The machine's CPUs plans use (platform::available_cpus(), unless a test
// overrides them); never the call's thread count, which must not change a path.
int planning_cpus();

// Whether Winograd's savings outweigh its transforms for this problem with
// kernel set kt on a machine of `cpus` CPUs (besides winograd's shape rules):
// on AVX-512 machines of many CPUs, only with enough multiply-adds per CPU
// (conv3d_plan.cpp).
bool winograd_pays(const ConvGeometry& g, const KernelTable& kt, int cpus);

// Test-only interface (C++ tests, and volconv._core._cpu_plan for Python
// tests); not part of the public API.
namespace testing {

// The plan conv3d(input, weight, params) on the CPU would run now (active
// ISA, planning caches) with a contiguous output; validated as conv3d
// validates shapes and dtypes (the views need no data).
CpuPlan plan(const ConstTensorView& input, const ConstTensorView& weight, const ConvParams& params);

// The plan run_problem would run now (active ISA, get_num_threads()) for the problem of an op lowered to
// `lowered` with operands a, b (views need no data): data problems read a as
// the input and b as the weight, weight gradients a as the input and b as
// the output gradient; the result is contiguous, of the promoted dtype.
ProblemPlan plan_problem(detail::ConvOp op, const detail::ConvProblemGeometry& lowered, const ConstTensorView& a,
                         const ConstTensorView& b);

// Every kernel of the active table that a plan can name: a test that
// reaches all of them reaches every path and tile of the ISA.
std::vector<std::string> active_kernel_names();

// Plans (and so execution) use these cache sizes instead of the detected
// ones, so a test of chunking does not depend on the machine; all zero
// restores detection.
void override_caches(const platform::CacheSizes& caches);

// Plans take the machine to have this many CPUs (0 restores detection), so a
// test of a path does not depend on the machine's size.
void override_cpus(int cpus);

}  // namespace testing
}  // namespace volconv::cpu
