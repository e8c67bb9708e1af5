// The CUDA depthwise planner (csrc/cuda/depthwise_plan.h), on a machine
// without a GPU: every launch covers every output (and the weight
// gradient's chunks every position) exactly once over, stays inside the
// launch limits, and picks 64-bit offsets exactly when a view reaches 2^31.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>

#include "../../csrc/cuda/depthwise_plan.h"
#include "check.h"

using namespace volconv;
using detail::ConvOp;
using detail::ConvProblemGeometry;

namespace {

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

const void* buf_for_chunks() {
  alignas(16) static float buf[64];
  return buf;
}

ConvProblemGeometry depthwise(std::int64_t n, Int3 out, std::int64_t c, Int3 k) {
  ConvProblemGeometry g;
  g.batch = n;
  g.out = out;
  g.in = out;
  g.kernel = k;
  g.in_channels = g.out_channels = g.groups = c;
  return g;
}

void check_limits(const cuda_plan::Launch& l, const std::string& what) {
  const int threads = l.block[0] * l.block[1] * l.block[2];
  if (threads > cuda_plan::kThreadsPerBlock || threads < 32) check::fail(__FILE__, __LINE__, what + ": block size");
  if (l.grid[0] < 1 || l.grid[0] > cuda_plan::kMaxGridX || l.grid[1] < 1 || l.grid[1] > cuda_plan::kMaxGridYZ ||
      l.grid[2] < 1 || l.grid[2] > cuda_plan::kMaxGridYZ)
    check::fail(__FILE__, __LINE__, what + ": grid outside the launch limits");
}

// The reduce pass: one block per (tap, 32 channels), kReduceGroups rows.
void check_reduce(const cuda_plan::DepthwisePlan& p, std::int64_t taps, std::int64_t channels,
                  const std::string& what) {
  CHECK_EQ(p.reduce.block[0], 32);
  CHECK_EQ(p.reduce.block[1], cuda_plan::kReduceGroups);
  CHECK_EQ(p.reduce.grid[0], taps * ceil_div(channels, 32));
  check_limits(p.reduce, what + " reduce");
}

// Threads along each axis cover it, and dropping the last block would not.
void check_covers(std::int64_t blocks, std::int64_t per_block, std::int64_t needed, const std::string& what) {
  if (blocks * per_block < needed || (blocks - 1) * per_block >= needed)
    check::fail(__FILE__, __LINE__,
                what + ": " + std::to_string(blocks) + " blocks of " + std::to_string(per_block) + " for " +
                    std::to_string(needed));
}

// Channels per thread: vector loads only for row3 on views that allow them,
// a divisor of C, at most 2 for the weight gradient; the channel blocks cover C.
void check_channels(const cuda_plan::DepthwisePlan& p, const ConvProblemGeometry& g, bool vectors,
                    const std::string& what) {
  CHECK(p.vec == 1 || p.vec == 2 || p.vec == 4);
  CHECK_EQ(g.out_channels % p.vec, std::int64_t(0));
  if (!vectors || p.kernel != cuda_plan::DwKernel::row3) CHECK_EQ(p.vec, 1);
  if (p.op == ConvOp::weight_grad) CHECK(p.vec <= 2);
  if (vectors && p.kernel == cuda_plan::DwKernel::row3 && g.out_channels % 2 == 0) CHECK(p.vec >= 2);
  check_covers(p.main.grid[1], std::int64_t(p.block_channels) * p.vec, g.out_channels, what + " channels");
}

void check_data(const ConvProblemGeometry& g, bool vectors) {
  const auto p = cuda_plan::plan_depthwise(ConvOp::data, g, false, vectors);
  const std::string what = "data " + p.name();
  check_limits(p.main, what);
  CHECK_EQ(p.main.block[0], p.block_channels);
  CHECK_EQ(p.main.block[1], p.block_rows);
  check_channels(p, g, vectors, what);
  // Each thread: w_tile outputs of one (n, od, oh) line.
  const std::int64_t items = g.batch * g.out[0] * g.out[1] * ceil_div(g.out[2], p.w_tile);
  if (items > 0) check_covers(p.main.grid[0], p.block_rows, items, what + " positions");
  // row3 exactly for a kernel 3 wide along W read at stride 1 without dilation.
  const bool row3 = g.kernel[2] == 3 && g.stride[2] == 1 && g.kernel_dilation[2] == 1 &&
                    g.input_dilation == Int3{1, 1, 1};
  CHECK_EQ(p.kernel == cuda_plan::DwKernel::row3, row3);
  if (row3) CHECK_EQ(p.w_tile, 8);
  else CHECK(p.w_tile == 1 || (p.w_tile == 4 && g.out[2] >= 4));
  CHECK_EQ(p.workspace_bytes, std::int64_t(0));
}

void check_wgrad(const ConvProblemGeometry& g, bool vectors) {
  const auto p = cuda_plan::plan_depthwise(ConvOp::weight_grad, g, false, vectors);
  const std::string what = "wgrad " + p.name();
  const std::int64_t positions = g.batch * g.out[0] * g.out[1] * g.out[2];
  const std::int64_t taps = g.kernel[0] * g.kernel[1] * g.kernel[2];
  check_limits(p.main, what);
  check_limits(p.reduce, what + " reduce");
  check_channels(p, g, vectors, what);
  check_covers(p.main.grid[2], p.taps_per_pass, taps, what + " taps");
  CHECK(p.taps_per_pass >= 1 && p.taps_per_pass <= cuda_plan::kMaxTapsPerPass);
  CHECK_EQ(p.main.grid[0], p.chunks);
  // Every position (row3: every line) in exactly one chunk; a block's rows
  // step through its chunk.
  const std::int64_t lines = g.batch * g.out[0] * g.out[1];
  const bool row3 = g.kernel == Int3{3, 3, 3} && g.stride[2] == 1 && g.kernel_dilation[2] == 1 &&
                    g.input_dilation == Int3{1, 1, 1};
  CHECK_EQ(p.kernel == cuda_plan::DwKernel::row3, row3);
  if (row3) {
    if (lines > 0) check_covers(p.chunks, p.lines_per_chunk, lines, what + " line chunks");
    CHECK_EQ(p.lines_per_chunk % p.block_rows, std::int64_t(0));
    CHECK_EQ(p.positions_per_chunk, std::int64_t(0));
  } else {
    if (positions > 0) check_covers(p.chunks, p.positions_per_chunk, positions, what + " chunks");
    CHECK_EQ(p.positions_per_chunk % p.block_rows, std::int64_t(0));
    CHECK_EQ(p.lines_per_chunk, std::int64_t(0));
  }
  CHECK_EQ(p.workspace_bytes, p.chunks * taps * g.out_channels * std::int64_t(4));
  check_reduce(p, taps, g.out_channels, what);
  // The chunking depends on the shape only: the same shape, the same order.
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::weight_grad, g, false, vectors).name(), p.name());
}

// A problem that leaves the padding out (the transposed conv's and
// conv_general's weight gradients, zero_taps skipped): its weight gradient
// takes the generic kernels whatever the views allow (the tiled and row3
// ones multiply their zero halo); the rule changes no data problem's plan.
void check_padding_rule(const ConvProblemGeometry& g, bool vectors, int chunk_elems) {
  const auto skip = cuda_plan::plan_depthwise(ConvOp::weight_grad, g, false, vectors, chunk_elems, true, false);
  CHECK(skip.kernel == cuda_plan::DwKernel::generic);
  const auto data_skip = cuda_plan::plan_depthwise(ConvOp::data, g, false, vectors, chunk_elems, true, false);
  CHECK_EQ(data_skip.name(), cuda_plan::plan_depthwise(ConvOp::data, g, false, vectors, chunk_elems, true).name());
}

// The tiled kernels (16-byte chunks of chunk_elems channels): exactly for a
// 3x3x3 kernel at stride 1 without dilation and C a multiple of the chunk;
// the items cover every (n, D segment, H tile, W tile) once; D is cut only
// while the launch is short of kTargetBlocks, never below 4 depths a
// segment; the weight gradient's chunks and shared memory fit.
void check_tiled(ConvOp op, const ConvProblemGeometry& g, int chunk_elems) {
  const auto p = cuda_plan::plan_depthwise(op, g, false, true, chunk_elems);
  const std::string what = p.name();
  bool cube3 = g.out_channels % chunk_elems == 0;
  for (int i = 0; i < 3; ++i)
    cube3 = cube3 && g.kernel[i] == 3 && g.stride[i] == 1 && g.kernel_dilation[i] == 1 && g.input_dilation[i] == 1;
  CHECK_EQ(p.kernel == cuda_plan::DwKernel::tiled, cube3);
  if (!cube3) return;
  check_limits(p.main, what);
  CHECK_EQ(p.main.block[0], cuda_plan::kTileChannels);
  CHECK_EQ(p.main.block[1], cuda_plan::kTileRows);
  check_covers(p.main.grid[1], cuda_plan::kTileChannels, g.out_channels, what + " channels");
  // The forward's tile is kDataTileCols wide, the weight gradient's kTileCols.
  const int cols = op == ConvOp::data ? cuda_plan::kDataTileCols : cuda_plan::kTileCols;
  CHECK_EQ(p.w_tile, cols);
  const std::int64_t tiles = g.batch * ceil_div(g.out[1], cuda_plan::kTileRows) * ceil_div(g.out[2], cols);
  CHECK(p.d_seg >= 1);
  const std::int64_t segs = ceil_div(g.out[0], p.d_seg);
  CHECK_EQ(p.items, tiles * segs);
  if (segs > 1) {
    CHECK(p.d_seg >= 4);
    CHECK(tiles * (segs - 1) * p.main.grid[1] < cuda_plan::kTargetBlocks);  // one fewer would be short
  } else {
    CHECK_EQ(p.d_seg, int(std::max<std::int64_t>(1, g.out[0])));
  }
  const int slice = (cuda_plan::kTileRows + 2) * (cols + 2) * cuda_plan::kTileChannels * (16 / chunk_elems);
  CHECK(p.shared_bytes > 0);
  if (op == ConvOp::data) {
    // kDataTileBlocks blocks of the forward share an SM (227 KB of shared
    // memory, each block also holding 1 KB the driver reserves).
    CHECK(cuda_plan::kDataTileBlocks * (p.shared_bytes + 1024) <= 227 * 1024);
    CHECK_EQ(p.main.grid[0], std::max<std::int64_t>(1, p.items));
    CHECK_EQ(p.workspace_bytes, std::int64_t(0));
    // The slices, the weights, and for 16-bit outputs each warp's row of outputs.
    const int out_rows = chunk_elems == 8 ? cuda_plan::kTileRows * cols * cuda_plan::kTileChannels * 2 : 0;
    CHECK_EQ(p.shared_bytes,
             cuda_plan::kTileStages * slice + cuda_plan::kTileWeightSlots * cuda_plan::kTileChannels * 4 + out_rows);
    return;
  }
  CHECK_EQ(p.main.grid[0], p.chunks);
  CHECK(p.chunks >= 1 && (p.chunks <= p.items || p.items == 0));
  CHECK(p.chunks * p.main.grid[1] <= cuda_plan::kTargetBlocks + p.main.grid[1]);
  CHECK_EQ(p.workspace_bytes, p.chunks * 27 * g.out_channels * std::int64_t(4));
  // The staged input slices and output-gradient tiles, later the rows' sums;
  // three blocks share an SM (each also holds 1 KB the driver reserves).
  const int grad_tile = cuda_plan::kTileRows * cols * cuda_plan::kTileChannels * (16 / chunk_elems);
  CHECK(p.shared_bytes >= cuda_plan::kTileGradStages * (slice + grad_tile) && p.shared_bytes >= 27 * 256 * 4);
  CHECK(3 * (p.shared_bytes + 1024) <= 227 * 1024);
  check_limits(p.reduce, what + " reduce");
  check_reduce(p, 27, g.out_channels, what);
}

// The pairs kernel (16-bit forward, two channels a lane): planned only when
// the device makes bulk copies, for 16-bit chunks of a tiled forward whose
// launch at 64 channels a block has at least 512 blocks; then it keeps the
// tiled plan's items and D segments on a grid of 64-channel blocks, and three
// of its blocks fit an SM's shared memory. Anything else plans as without
// bulk copies.
void check_pairs(const ConvProblemGeometry& g, int chunk_elems) {
  const auto without = cuda_plan::plan_depthwise(ConvOp::data, g, false, true, chunk_elems, false);
  const auto p = cuda_plan::plan_depthwise(ConvOp::data, g, false, true, chunk_elems, true);
  const std::int64_t pair_blocks = without.items * ceil_div(g.out_channels, cuda_plan::kPairChannels);
  const bool pairs = without.kernel == cuda_plan::DwKernel::tiled && chunk_elems == 8 &&
                     pair_blocks >= 512;
  CHECK_EQ(p.kernel == cuda_plan::DwKernel::pairs, pairs);
  if (!pairs) {
    CHECK_EQ(p.name(), without.name());
    CHECK_EQ(p.main.grid[1], without.main.grid[1]);
    CHECK_EQ(p.shared_bytes, without.shared_bytes);
    return;
  }
  CHECK_EQ(p.name(), "dw_data_pairs_d" + std::to_string(without.d_seg) + "_i32");
  CHECK_EQ(p.items, without.items);
  CHECK_EQ(p.main.grid[0], without.main.grid[0]);
  check_covers(p.main.grid[1], cuda_plan::kPairChannels, g.out_channels, p.name() + " channels");
  CHECK_EQ(p.main.block[0], 32);
  CHECK_EQ(p.main.block[1], cuda_plan::kTileRows);
  // Four staged slices of 10 x 10 positions x 64 channels, 32 lanes' weights,
  // the warps' rows of outputs, four 8-byte barriers and four 4-byte counters.
  CHECK_EQ(p.shared_bytes, 4 * 10 * 10 * 64 * 2 + 32 * cuda_plan::kPairWeightStride * 4 + 8 * 8 * 64 * 2 + 4 * 8 + 4 * 4);
  CHECK(cuda_plan::kPairBlocks * (p.shared_bytes + 1024) <= 227 * 1024);
  // The launcher's fallback (a refused tensor map) is the plan without bulk copies.
  const auto instead = cuda_plan::tiled_instead_of_pairs(p, g.out_channels);
  CHECK(instead.kernel == cuda_plan::DwKernel::tiled);
  CHECK_EQ(instead.name(), without.name());
  CHECK_EQ(instead.items, without.items);
  for (int i = 0; i < 3; ++i) {
    CHECK_EQ(instead.main.grid[i], without.main.grid[i]);
    CHECK_EQ(instead.main.block[i], without.main.block[i]);
  }
  CHECK_EQ(instead.shared_bytes, without.shared_bytes);
}

}  // namespace

int main() {
  // The bench's shapes (issue 20) and edge cases: one output, W below the
  // tile, C below a warp, a 7x7x7 kernel (343 taps: 11 passes), N = 0.
  const ConvProblemGeometry shapes[] = {
      depthwise(1, {16, 56, 56}, 64, {3, 3, 3}),  depthwise(1, {17, 128, 128}, 256, {3, 3, 3}),
      depthwise(2, {32, 64, 64}, 128, {3, 3, 3}), depthwise(1, {1, 1, 1}, 1, {1, 1, 1}),
      depthwise(3, {2, 5, 7}, 3, {2, 1, 3}),      depthwise(1, {4, 4, 9}, 100, {7, 7, 7}),
      depthwise(0, {4, 4, 4}, 8, {3, 3, 3}),
  };
  for (const auto& g : shapes)
    for (bool vectors : {false, true}) {
      check_data(g, vectors);
      check_wgrad(g, vectors);
      for (int chunk : {0, 4, 8}) check_padding_rule(g, vectors, chunk);
    }
  std::mt19937 rng(20);
  auto pick = [&](int lo, int hi) { return std::int64_t(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  for (int i = 0; i < 500; ++i) {
    auto g = depthwise(pick(1, 4), {pick(1, 40), pick(1, 300), pick(1, 300)}, pick(1, 700),
                       {pick(1, 5), pick(1, 5), pick(1, 5)});
    if (i % 3 == 0) g.kernel = {3, 3, 3};  // row3 often
    if (i % 5 == 1) g.stride[2] = pick(1, 3);
    if (i % 7 == 2) g.kernel_dilation[2] = pick(1, 3);
    if (i % 11 == 3) g.input_dilation[pick(0, 2)] = 2;
    check_data(g, i % 2 == 0);
    check_wgrad(g, i % 2 == 0);
    if (i % 3 == 0 && i % 2 == 0) g.out_channels = g.in_channels = g.groups = 8 * pick(1, 80);  // chunks fit
    for (ConvOp op : {ConvOp::data, ConvOp::weight_grad}) check_tiled(op, g, i % 2 == 0 ? 4 : 8);
    check_pairs(g, i % 2 == 0 ? 4 : 8);
    check_pairs(g, 8);
    check_padding_rule(g, i % 2 == 0, i % 3 == 0 ? 8 : 4);
  }
  for (const auto& g : shapes)
    for (int chunk : {4, 8})
      for (ConvOp op : {ConvOp::data, ConvOp::weight_grad}) check_tiled(op, g, chunk);
  // The bench's shapes: one D segment where the tiles fill the GPU, four
  // for the small shape (98 tiles x 2 channel blocks).
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false, true, 4).name(),
           std::string("dw_data_tiled_d17_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[0], false, true, 8).name(),
           std::string("dw_data_tiled_d4_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::weight_grad, shapes[2], false, true, 8).name(),
           std::string("dw_wgrad_tiled_d16_chunks256_i32"));
  // With bulk copies, the large shape's 16-bit forward takes the pairs
  // kernel (256 items x 4 blocks of 64 channels), and so does 2x32x64x64x128
  // (256 items x 2); the small shape (196 x 1) and float32 keep the tiled kernel.
  for (const auto& g : shapes) check_pairs(g, 8);
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false, true, 8, true).name(),
           std::string("dw_data_pairs_d17_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[2], false, true, 8, true).name(),
           std::string("dw_data_pairs_d16_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[0], false, true, 8, true).name(),
           std::string("dw_data_tiled_d4_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false, true, 4, true).name(),
           std::string("dw_data_tiled_d17_i32"));
  // No chunk copies (a view the copies cannot read): the row3 kernels.
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false, true, 0).kernel, cuda_plan::DwKernel::row3);
  // The chunk multiple: strides of 8 elements fit 16-bit chunks, 4 do not.
  CHECK(cuda_plan::vector_loads_fit(buf_for_chunks(), {1, 2, 2, 2, 8}, {64, 32, 16, 8, 1}, 8));
  CHECK(!cuda_plan::vector_loads_fit(buf_for_chunks(), {1, 2, 2, 2, 4}, {32, 16, 8, 4, 1}, 8));
  // The big shape: row3, eight outputs per thread, two warps of channels;
  // a stride along W takes the generic kernel.
  const auto big = cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false);
  CHECK_EQ(big.name(), std::string("dw_data_row3_w8_i32"));
  CHECK_EQ(big.block_channels, 64);
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], true).name(), std::string("dw_data_row3_w8_i64"));
  ConvProblemGeometry strided = shapes[1];
  strided.stride[2] = 2;
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, strided, false).name(), std::string("dw_data_w4_i32"));

  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::data, shapes[1], false, true).name(),
           std::string("dw_data_row3_w8_v4_i32"));
  CHECK_EQ(cuda_plan::plan_depthwise(ConvOp::weight_grad, shapes[1], false, true).vec, 2);

  // Vector loads: 16-byte aligned start, channel stride 1, other strides multiples of 4.
  alignas(16) static float buf[64];
  const Shape5 shape{1, 2, 2, 2, 8}, packed{64, 32, 16, 8, 1};
  CHECK(cuda_plan::vector_loads_fit(buf, shape, packed));
  CHECK(!cuda_plan::vector_loads_fit(buf + 1, shape, packed));
  CHECK(!cuda_plan::vector_loads_fit(buf, shape, {64, 32, 16, 8, 2}));
  CHECK(!cuda_plan::vector_loads_fit(buf, shape, {64, 32, 16, 6, 1}));
  CHECK(cuda_plan::vector_loads_fit(buf, {1, 1, 1, 1, 8}, {7, 7, 7, 7, 1}));  // size-1 axes: any stride

  // The views that decide the tiled kernels' chunks: always the input; the
  // output gradient of a weight gradient (copied in chunks); the result of a
  // 16-bit forward (stored in chunks), not of a float32 one (stored by element).
  {
    alignas(16) static std::uint16_t elems[256];
    const Shape5 s8{1, 2, 2, 2, 8}, p8{64, 32, 16, 8, 1};
    const cuda_plan::ChunkView fit{elems, s8, p8}, off{elems + 1, s8, p8};  // 2 bytes past a 16-byte boundary
    for (ConvOp op : {ConvOp::data, ConvOp::weight_grad})
      for (int bytes : {2, 4}) {
        CHECK_EQ(cuda_plan::tiled_chunk_elems(op, bytes, fit, fit), 16 / bytes);
        CHECK_EQ(cuda_plan::tiled_chunk_elems(op, bytes, off, fit), 0);
        const bool second_in_chunks = op == ConvOp::weight_grad || bytes == 2;
        CHECK_EQ(cuda_plan::tiled_chunk_elems(op, bytes, fit, off), second_in_chunks ? 0 : 16 / bytes);
      }
  }

  // 64-bit offsets exactly from a reach of 2^31 elements on.
  const std::int64_t two31 = std::int64_t(1) << 31;
  CHECK(!cuda_plan::needs_index64({1, 1, 1, 1, two31}, {0, 0, 0, 0, 1}));
  CHECK(cuda_plan::needs_index64({1, 1, 1, 1, two31 + 1}, {0, 0, 0, 0, 1}));
  CHECK(cuda_plan::needs_index64({2, 1, 1, 1, 1}, {-two31, 0, 0, 0, 1}));
  CHECK(!cuda_plan::needs_index64({2, 1, 1, 1, 1}, {-(two31 - 1), 0, 0, 0, 1}));

  // What the kernels cannot run is named.
  ConvProblemGeometry dense = depthwise(1, {4, 4, 4}, 8, {3, 3, 3});
  dense.groups = 1;
  CHECK(cuda_plan::unsupported_reason(dense).find("depthwise convolutions (groups == C_in == C_out)") !=
        std::string::npos);
  ConvProblemGeometry multiplier = depthwise(1, {4, 4, 4}, 8, {3, 3, 3});
  multiplier.out_channels = 16;
  CHECK(!cuda_plan::unsupported_reason(multiplier).empty());
  ConvProblemGeometry reflect = depthwise(1, {4, 4, 4}, 8, {3, 3, 3});
  reflect.padding_mode[1] = PaddingMode::reflect;
  CHECK(cuda_plan::unsupported_reason(reflect).find("zeros") != std::string::npos);
  CHECK(cuda_plan::unsupported_reason(depthwise(1, {4, 4, 4}, 8, {3, 3, 3})).empty());
  return check::result("test_cuda_plan");
}
