#include "depthwise_plan.h"

#include <algorithm>
#include <cstdlib>

namespace volconv::cuda_plan {
namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Channels across lanes: a full warp when C allows, two warps for C >= 64
// (so a block reads 256 B per row of fp32), never more lanes than C needs.
int channels_per_block(std::int64_t c) { return c >= 64 ? 64 : 32; }

// A kernel 3 wide along W, read at stride 1 without dilation (row3's case).
bool row3_along_w(const detail::ConvProblemGeometry& g) {
  return g.kernel[2] == 3 && g.stride[2] == 1 && g.kernel_dilation[2] == 1 && g.input_dilation[0] == 1 &&
         g.input_dilation[1] == 1 && g.input_dilation[2] == 1;
}

// The weight gradient's second pass: one block per (tap, 32 channels),
// kReduceGroups rows of 32 lanes.
void plan_reduce(DepthwisePlan& p, std::int64_t taps, std::int64_t channels) {
  p.reduce.grid[0] = taps * ceil_div(channels, 32);
  p.reduce.block[0] = 32;
  p.reduce.block[1] = kReduceGroups;
}

// 3x3x3 at stride 1 without any dilation (the tiled kernels' case).
bool cube3_unit(const detail::ConvProblemGeometry& g) {
  for (int i = 0; i < 3; ++i)
    if (g.kernel[i] != 3 || g.stride[i] != 1 || g.kernel_dilation[i] != 1 || g.input_dilation[i] != 1) return false;
  return true;
}

// The tiled kernels' items: D is cut into segments (each re-reads a 2-slice
// halo) only while the launch would have fewer than kTargetBlocks blocks,
// and never below 4 output depths a segment.
void plan_tiled(DepthwisePlan& p, const detail::ConvProblemGeometry& g, int chunk_elems, bool bulk_copies) {
  const std::int64_t channel_blocks = ceil_div(g.out_channels, kTileChannels);
  const bool data = p.op == detail::ConvOp::data;
  const int cols = data ? kDataTileCols : kTileCols;
  const std::int64_t tiles = g.batch * ceil_div(g.out[1], kTileRows) * ceil_div(g.out[2], cols);
  const std::int64_t want = ceil_div(kTargetBlocks, std::max<std::int64_t>(1, tiles * channel_blocks));
  const std::int64_t segs = std::max<std::int64_t>(1, std::min(want, g.out[0] / 4));
  p.d_seg = int(std::max<std::int64_t>(1, ceil_div(g.out[0], segs)));
  p.items = tiles * ceil_div(g.out[0], p.d_seg);
  p.block_channels = kTileChannels;
  p.block_rows = kTileRows;
  p.w_tile = cols;
  p.main.block[0] = kTileChannels;
  p.main.block[1] = kTileRows;
  p.main.grid[1] = channel_blocks;
  if (data) {
    p.main.grid[0] = std::max<std::int64_t>(1, p.items);
    p.shared_bytes = tiled_data_shared_bytes(chunk_elems);
    const std::int64_t pair_blocks = p.items * ceil_div(g.out_channels, kPairChannels);
    if (chunk_elems == 8 && bulk_copies && pair_blocks >= kPairMinBlocks) {
      p.kernel = DwKernel::pairs;
      p.main.grid[1] = ceil_div(g.out_channels, kPairChannels);
      p.shared_bytes = pairs_shared_bytes();
    }
    return;
  }
  // Weight gradient: at most enough chunks to fill the GPU, so the second
  // pass adds few partial sums; each block sums whole items.
  p.chunks = std::max<std::int64_t>(1, std::min(p.items, ceil_div(kTargetBlocks, channel_blocks)));
  p.taps_per_pass = 27;
  p.workspace_bytes = p.chunks * 27 * g.out_channels * std::int64_t(sizeof(float));
  p.main.grid[0] = p.chunks;
  // The staged slices and output-gradient tiles, later the rows' 27 sums per lane.
  const int slice = (kTileRows + 2) * (cols + 2) * kTileChannels * (16 / chunk_elems);  // bytes
  const int grad_tile = kTileRows * kTileCols * kTileChannels * (16 / chunk_elems);  // bytes
  p.shared_bytes =
      std::max(kTileGradStages * (slice + grad_tile), 27 * kTileRows * kTileChannels * int(sizeof(float)));
  plan_reduce(p, 27, g.out_channels);
}

}  // namespace

std::string DepthwisePlan::name() const {
  const std::string idx = index64 ? "_i64" : "_i32";
  const std::string row3 = kernel == DwKernel::row3 ? "row3_" : "";
  const std::string v = vec > 1 ? "_v" + std::to_string(vec) : "";
  if (kernel == DwKernel::pairs) return "dw_data_pairs_d" + std::to_string(d_seg) + idx;
  if (kernel == DwKernel::tiled)
    return std::string(op == detail::ConvOp::data ? "dw_data" : "dw_wgrad") + "_tiled_d" + std::to_string(d_seg) +
           (op == detail::ConvOp::data ? "" : "_chunks" + std::to_string(chunks)) + idx;
  if (op == detail::ConvOp::data) return "dw_data_" + row3 + "w" + std::to_string(w_tile) + v + idx;
  return "dw_wgrad_" + row3 + "chunks" + std::to_string(chunks) + "_taps" + std::to_string(taps_per_pass) + v + idx;
}

std::string unsupported_reason(const detail::ConvProblemGeometry& g) {
  if (!(g.groups == g.in_channels && g.groups == g.out_channels))
    return "The CUDA backend runs only depthwise convolutions (groups == C_in == C_out) for now, but got C_in=" +
           std::to_string(g.in_channels) + ", C_out=" + std::to_string(g.out_channels) +
           ", groups=" + std::to_string(g.groups);
  for (PaddingMode m : g.padding_mode)
    if (m != PaddingMode::zeros) return "The CUDA backend pads with zeros only for now";
  return "";
}

bool vector_loads_fit(const void* address, const Shape5& shape, const Shape5& strides, int multiple) {
  if (reinterpret_cast<std::uintptr_t>(address) % 16 != 0) return false;
  if (shape[4] > 1 && strides[4] != 1) return false;
  for (int i = 0; i < 4; ++i)
    if (shape[i] > 1 && strides[i] % multiple != 0) return false;
  return true;
}

int tiled_chunk_elems(detail::ConvOp op, int elem_bytes, const ChunkView& input, const ChunkView& second) {
  const int chunk = 16 / elem_bytes;
  const auto fits = [chunk](const ChunkView& v) { return vector_loads_fit(v.address, v.shape, v.strides, chunk); };
  const bool second_in_chunks = op == detail::ConvOp::weight_grad || elem_bytes == 2;
  return fits(input) && (!second_in_chunks || fits(second)) ? chunk : 0;
}

bool needs_index64(const Shape5& shape, const Shape5& strides) {
  std::int64_t reach = 0;
  for (int i = 0; i < 5; ++i)
    if (shape[i] > 0) reach += std::abs(strides[i]) * (shape[i] - 1);
  return reach >= (std::int64_t(1) << 31);
}

int tiled_data_shared_bytes(int chunk_elems) {
  const int slice = (kTileRows + 2) * (kDataTileCols + 2) * kTileChannels * (16 / chunk_elems);  // bytes
  // The slices, the weights, and for 16-bit outputs each warp's row of outputs.
  const int out_rows = chunk_elems == 8 ? kTileRows * kDataTileCols * kTileChannels * 2 : 0;
  return kTileStages * slice + kTileWeightSlots * kTileChannels * int(sizeof(float)) + out_rows;
}

int pairs_shared_bytes() {
  const int slice = (kTileRows + 2) * (kDataTileCols + 2) * kPairChannels * 2;  // bytes
  // The slices, the weights, each warp's row of outputs, the slices' mbarriers and counters.
  return kTileStages * slice + kTileChannels * kPairWeightStride * int(sizeof(float)) +
         kTileRows * kDataTileCols * kPairChannels * 2 + kTileStages * (8 + 4);
}

DepthwisePlan tiled_instead_of_pairs(const DepthwisePlan& pairs, std::int64_t channels) {
  DepthwisePlan p = pairs;  // the same items and D segments
  p.kernel = DwKernel::tiled;
  p.main.grid[1] = ceil_div(channels, kTileChannels);
  p.shared_bytes = tiled_data_shared_bytes(8);
  return p;
}

DepthwisePlan plan_depthwise(detail::ConvOp op, const detail::ConvProblemGeometry& g, bool index64,
                             bool channel_vectors, int chunk_elems, bool bulk_copies, bool padding_multiplied) {
  DepthwisePlan p;
  p.op = op;
  p.index64 = index64;
  const bool data = op == detail::ConvOp::data;
  const bool generic_only = !data && !padding_multiplied;
  // Whole 16-byte chunks of channels: C a multiple of the chunk.
  if (!generic_only && cube3_unit(g) && chunk_elems > 0 && g.out_channels % chunk_elems == 0) {
    p.kernel = DwKernel::tiled;
    plan_tiled(p, g, chunk_elems, bulk_copies);
    return p;
  }
  const bool row3 = !generic_only && row3_along_w(g) && (data || (g.kernel[0] == 3 && g.kernel[1] == 3));
  if (row3) {
    p.kernel = DwKernel::row3;
    p.w_tile = 8;
    // Vector loads of channels: fewer instructions per byte. The weight
    // gradient keeps 27 sums per channel in registers, so at most 2.
    const std::int64_t c = g.out_channels;
    if (channel_vectors) p.vec = data && c % 4 == 0 ? 4 : c % 2 == 0 ? 2 : 1;
    if (!data && p.vec == 2) p.w_tile = 4;  // 54 sums in registers: a shorter row
  }
  const std::int64_t lanes = ceil_div(g.out_channels, p.vec);
  p.block_channels = p.vec == 1 ? channels_per_block(g.out_channels) : lanes >= 64 ? 64 : lanes >= 32 ? 32 : 16;
  p.block_rows = kThreadsPerBlock / p.block_channels;
  const std::int64_t channel_blocks = ceil_div(g.out_channels, std::int64_t(p.block_channels) * p.vec);
  const std::int64_t rows = g.batch * g.out[0] * g.out[1];  // (n, od, oh) lines of W outputs
  if (data) {
    // row3: eight outputs per thread (10 loads feed 24 multiply-adds); else
    // four once a W line is long enough to fill them.
    if (!row3) p.w_tile = g.out[2] >= 8 ? 4 : 1;
    const std::int64_t items = rows * ceil_div(g.out[2], p.w_tile);
    p.main.grid[0] = std::max<std::int64_t>(1, ceil_div(items, p.block_rows));  // a launch needs a block
    p.main.grid[1] = channel_blocks;
    p.main.block[0] = p.block_channels;
    p.main.block[1] = p.block_rows;
    return p;
  }
  // Weight gradient: chunks of at least 256 positions, at most 512 chunks
  // (enough blocks to fill an H200's 132 SMs several times over).
  const std::int64_t positions = rows * g.out[2];
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  if (row3) {
    // Whole lines per thread, at least one line per row of the block.
    p.lines_per_chunk = std::max<std::int64_t>(p.block_rows, ceil_div(rows, 512));
    p.lines_per_chunk = ceil_div(p.lines_per_chunk, p.block_rows) * p.block_rows;
    p.chunks = std::max<std::int64_t>(1, ceil_div(rows, p.lines_per_chunk));
  } else {
    p.positions_per_chunk = std::max<std::int64_t>(256, ceil_div(positions, 512));
    p.positions_per_chunk = ceil_div(p.positions_per_chunk, p.block_rows) * p.block_rows;
    p.chunks = std::max<std::int64_t>(1, ceil_div(positions, p.positions_per_chunk));
  }
  p.taps_per_pass = int(std::min<std::int64_t>(taps, kMaxTapsPerPass));
  p.workspace_bytes = p.chunks * taps * g.out_channels * std::int64_t(sizeof(float));
  p.main.grid[0] = p.chunks;
  p.main.grid[1] = channel_blocks;
  p.main.grid[2] = ceil_div(taps, p.taps_per_pass);
  p.main.block[0] = p.block_channels;
  p.main.block[1] = p.block_rows;
  plan_reduce(p, taps, g.out_channels);
  return p;
}

}  // namespace volconv::cuda_plan
