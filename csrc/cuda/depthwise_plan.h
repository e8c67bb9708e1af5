// The CUDA depthwise planner: which kernel, tile and launch shape a depthwise
// problem gets. Plain C++ (no CUDA headers), built on every platform, so the
// Linux tests without a GPU ask it what the device would run
// (tests/cpp/test_cuda_plan.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "../core/conv_problem.h"

namespace volconv::cuda_plan {

struct Launch {
  std::int64_t grid[3] = {1, 1, 1};
  int block[3] = {1, 1, 1};
};

// Limits of the launch shape the kernels are compiled for.
constexpr int kThreadsPerBlock = 256;
constexpr int kMaxTapsPerPass = 32;  // weight-gradient accumulators per thread
constexpr std::int64_t kMaxGridX = 2147483647, kMaxGridYZ = 65535;
// The tiled kernels' block tile: kTileRows output rows (one warp each) by
// kTileCols outputs along W (per thread), kTileChannels channels (one per lane).
constexpr int kTileRows = 8, kTileCols = 8, kTileChannels = 32;
// The forward's tile is kDataTileCols wide; kDataTileBlocks of its blocks
// share an SM (its register budget: 65536 / (256 kDataTileBlocks) a thread).
// Measured on the H200 (tests/cuda/tiled_bench/variants.sh "8 4" "16 2"):
// 16 columns and two blocks ran the 16-bit forward 2.5% faster on
// 1x17x128x128x256 but 6% slower on 2x32x64x64x128 and 12% slower on
// 1x16x56x56x64 (half the warps an SM to hide the waits). The -D overrides
// are for that script.
#ifndef VOLCONV_DATA_TILE_COLS
#define VOLCONV_DATA_TILE_COLS 8
#endif
#ifndef VOLCONV_DATA_TILE_BLOCKS
#define VOLCONV_DATA_TILE_BLOCKS 4
#endif
constexpr int kDataTileCols = VOLCONV_DATA_TILE_COLS, kDataTileBlocks = VOLCONV_DATA_TILE_BLOCKS;
// Staged input slices per block: the forward keeps kTileStages - 1 in flight
// while it reads one; the weight gradient stages kTileGradStages input
// slices and as many output-gradient tiles (kTileRows x kTileCols outputs),
// two of each in flight, so three float32 blocks share an SM.
constexpr int kTileStages = 4, kTileGradStages = 3;
// The forward's weights in shared memory: kTileWeightSlots floats a lane
// (three rows of nine taps, each padded to 12), read four at a time.
constexpr int kTileWeightSlots = 36;
// The pairs kernel (a 16-bit forward with two channels a lane: 64 channels a
// block): its weights take kPairWeightStride floats a lane (kPairWeightSlots
// used), kPairBlocks blocks share an SM (80 registers a thread), and it runs
// where its launch has at least kPairMinBlocks blocks. On the H200 (bfloat16
// forward, ms, the tiled kernel -> pairs, session 19's kernel):
// 1x17x128x128x256 0.1532 -> 0.1353, 2x32x64x64x128 (512 of its blocks)
// 0.0765 -> 0.0738; 1x16x56x56x64 (196 blocks) 0.0127 -> 0.0151, so not there.
constexpr int kPairChannels = 64, kPairWeightSlots = 72, kPairWeightStride = 76, kPairBlocks = 3;
constexpr std::int64_t kPairMinBlocks = 512;
// The weight gradient's second pass: the chunks are cut into kReduceGroups
// fixed ranges, each added in order by its own thread, then the ranges' sums
// in range order (a fixed order; many loads in flight instead of one chain).
constexpr int kReduceGroups = 8;
// Blocks that fill an H200 (132 SMs, up to 8 blocks of 256 threads each):
// the tiled kernels cut D into segments until a launch has this many.
constexpr std::int64_t kTargetBlocks = 1024;

// Which kernel runs. row3: a kernel 3 wide along W at stride 1, no dilation
// along W and no input dilation: each thread keeps the w_tile + 2 inputs of
// a row in registers and reuses each for three taps (for the weight
// gradient, also 3x3x3 so the 27 sums stay in registers). tiled: a 3x3x3
// kernel at stride 1 without dilation whose input can be copied in 16-byte
// chunks: a block stages each input slice of its (H, W) tile in shared
// memory once and marches along D (depthwise_tiled.cuh). pairs: the tiled
// forward of 16-bit data with two channels a lane and its input slices
// copied by the GPU's bulk tensor copies (depthwise_pairs.cuh). generic: any
// geometry, each tap's input read through the L1 cache.
enum class DwKernel { generic, row3, tiled, pairs };

struct DepthwisePlan {
  detail::ConvOp op = detail::ConvOp::data;
  DwKernel kernel = DwKernel::generic;
  // Data problems: each thread computes w_tile consecutive outputs along W of
  // one channel (the weight tap is read once for all of them); channels run
  // across the lanes of a warp, so every load is one coalesced row.
  int w_tile = 1;
  int block_channels = 32;  // threads along C (block.x)
  // row3: channels per thread, read as one vector load (1, 2 or 4); needs
  // channel-contiguous, aligned views (the caller says so: plan_depthwise).
  int vec = 1;
  int block_rows = 8;       // threads along output rows (block.y)
  bool index64 = false;     // some element offset reaches 2^31
  Launch main;              // data: the kernel; weight_grad: the partial sums
  // Weight gradient: the output positions are cut into `chunks` fixed chunks
  // of positions_per_chunk; each block sums one chunk for a slice of taps and
  // channels into partials[chunk][tap][c], then one thread per (tap, c) adds
  // the chunks in order. The order depends only on the shape, never on the
  // device or timing: the result is bit-identical run to run.
  // generic: chunks of positions_per_chunk output positions; row3: chunks of
  // lines_per_chunk (n, od, oh) lines of W outputs (positions_per_chunk 0).
  std::int64_t chunks = 0, positions_per_chunk = 0, lines_per_chunk = 0;
  int taps_per_pass = 0;
  std::int64_t workspace_bytes = 0;
  Launch reduce;
  // tiled: the spatial items (batch x D segments of d_seg output depths x
  // (H, W) tiles); data: one block per item; weight_grad: `chunks` blocks per
  // channel slice, block b summing items b, b + chunks, ... in that order.
  int d_seg = 0;
  std::int64_t items = 0;
  int shared_bytes = 0;  // tiled: dynamic shared memory per block

  // e.g. "dw_data_row3_w8_i32", "dw_data_tiled_d17_i32" or "dw_wgrad_chunks12_taps27_i32".
  std::string name() const;
};

// "" when the CUDA kernels run this problem; otherwise what they cannot do
// (depthwise with channel multiplier 1 and zero padding only, for now).
std::string unsupported_reason(const detail::ConvProblemGeometry& g);

// True when an offset of a view of `shape` with `strides` reaches 2^31.
bool needs_index64(const Shape5& shape, const Shape5& strides);

// The plan of a supported problem; index64 as needs_index64 said for any view;
// bulk_copies when the device can make tensor maps for bulk copies (the
// pairs kernel needs them);
// channel_vectors when every view the kernels read with vector loads has
// channel stride 1, its other strides multiples of 4 and a 16-byte aligned
// start (vector_loads_fit); chunk_elems > 0 when the views the tiled kernels
// copy (the input; for the weight gradient also the output gradient; for a
// 16-bit forward also the result, which it stores in chunks) can be
// copied in 16-byte chunks of chunk_elems elements (vector_loads_fit with
// that multiple; the element size is 16 / chunk_elems bytes).
// padding_multiplied: the problem's rule for the zeros outside the input
// (conv_problem.h's ZeroTaps); a weight gradient that leaves them out (the
// transposed conv's, conv_general's) takes the generic kernels, whose sums
// skip them, since the tiled and row3 ones multiply their zero halo
// (depthwise_nonfinite.cuh).
DepthwisePlan plan_depthwise(detail::ConvOp op, const detail::ConvProblemGeometry& g, bool index64,
                             bool channel_vectors = false, int chunk_elems = 0, bool bulk_copies = false,
                             bool padding_multiplied = true);

// Dynamic shared memory of a forward block of the tiled kernel (elements of
// 16 / chunk_elems bytes) and of the pairs kernel.
int tiled_data_shared_bytes(int chunk_elems);
int pairs_shared_bytes();

// The tiled kernel's plan of the problem a pairs plan is for (C channels):
// what the launcher runs should the device refuse the input's tensor map.
// It is the plan made without bulk copies.
DepthwisePlan tiled_instead_of_pairs(const DepthwisePlan& pairs, std::int64_t channels);

// True when a view of `shape` and `strides` starting at `address` can be
// read `multiple` channels at a time: a 16-byte aligned start, channel
// stride 1 and the other strides multiples of `multiple`.
bool vector_loads_fit(const void* address, const Shape5& shape, const Shape5& strides, int multiple = 4);

// A view's address, shape and strides (elements), for tiled_chunk_elems.
struct ChunkView {
  const void* address = nullptr;
  Shape5 shape{}, strides{};
};

// plan_depthwise's chunk_elems for elements of `elem_bytes`: 16 / elem_bytes
// when every view the tiled kernels access in 16-byte chunks of channels
// fits (vector_loads_fit with that multiple): the input, and `second`,
// which is the output gradient of a weight gradient (copied in chunks) or
// the result of a 16-bit forward (stored in chunks; a float32 forward
// stores element by element); else 0.
int tiled_chunk_elems(detail::ConvOp op, int elem_bytes, const ChunkView& input, const ChunkView& second);

}  // namespace volconv::cuda_plan
