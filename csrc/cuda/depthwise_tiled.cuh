// Tiled depthwise kernels for a 3x3x3 kernel at stride 1 without dilation
// (the common case): a block owns a tile of kTileRows x kTileCols outputs
// (the forward: kDataTileCols) along (H, W) for 32 channels and marches along D. Each input slice of the
// tile (plus its one-element halo) is copied once into shared memory with
// cp.async (zeros outside the input) while earlier slices are computed,
// so each input element is read from global memory about once instead of
// once per output row that reads it. Lane = channel (each shared-memory read
// of a position is one conflict-free row); warp = output row; each thread
// keeps kTileCols outputs along W for the three depths in flight.
// Included by depthwise_kernels.cuh (after its helpers).
#pragma once

namespace volconv::cuda {
namespace {

namespace tile {
constexpr int kRows = cuda_plan::kTileRows, kCols = cuda_plan::kTileCols, kLanes = cuda_plan::kTileChannels;
constexpr int kInRows = kRows + 2, kInCols = kCols + 2;  // the tile's inputs: one halo element per side
static_assert(kRows * kLanes == cuda_plan::kThreadsPerBlock, "one warp per output row of the tile");
constexpr int kSlice = kInRows * kInCols * kLanes;  // elements of one staged input slice
// The forward's tile is kDataCols wide (the weight gradient's kCols).
constexpr int kDataCols = cuda_plan::kDataTileCols, kDataInCols = kDataCols + 2;
constexpr int kDataSlice = kInRows * kDataInCols * kLanes;
}  // namespace tile

__device__ __forceinline__ void copy16_async(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  // src-size 0 writes 16 zero bytes and reads nothing (padding, the tile's overhang).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void copies_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void copies_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
}

// The spatial work item of a block: batch n, output depths [od0, od1), the
// tile's first output row and column.
struct TileItem {
  std::int64_t n;
  int od0, od1, oh0, ow0;
};

template <int Cols>
__device__ __forceinline__ TileItem tile_item(const DwArgs& a, std::int64_t item, int d_seg) {
  const int w_tiles = (a.out[2] + Cols - 1) / Cols;
  const int h_tiles = (a.out[1] + tile::kRows - 1) / tile::kRows;
  const int segs = (a.out[0] + d_seg - 1) / d_seg;
  TileItem t;
  t.ow0 = int(item % w_tiles) * Cols;
  item /= w_tiles;
  t.oh0 = int(item % h_tiles) * tile::kRows;
  item /= h_tiles;
  t.od0 = int(item % segs) * d_seg;
  t.od1 = min(t.od0 + d_seg, a.out[0]);
  t.n = item / segs;
  return t;
}

// Copies Rows x Cols positions of one depth of a view into shared memory,
// laid out [row][col][lane]: positions from (h0, w0), channels c0..c0+31,
// as 16-byte chunks; zeros outside the view (h_size x w_size) or past the
// channels. The input slices of a tile (with their halo) and the weight
// gradient's output-gradient tiles both go through it. Each thread's chunks
// and their offsets within a depth are worked out once per item, so staging
// a depth costs a few instructions. `base` is batch n's first element; its
// channel stride is 1 (the planner's chunk rule).
template <class T, class I, int Rows = tile::kInRows, int Cols = tile::kInCols>
struct SliceStager {
  static constexpr int kPer = 16 / int(sizeof(T));  // elements per chunk
  static constexpr int kChunks = Rows * Cols * (tile::kLanes / kPer);
  static constexpr int kIters = (kChunks + cuda_plan::kThreadsPerBlock - 1) / cuda_plan::kThreadsPerBlock;
  I offset[kIters];     // of chunk i from the depth's first element
  unsigned inside = 0;  // bit i: chunk i is inside the view along H and W and inside C
  const T* x;
  I depth_stride;
  int depths;

  __device__ __forceinline__ SliceStager(const T* base, I d_stride, int d_size, int h0, int w0, int h_size,
                                         int w_size, I h_stride, I w_stride, std::int64_t c0,
                                         std::int64_t channels)
      : x(base), depth_stride(d_stride), depths(d_size) {
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const int k = i * cuda_plan::kThreadsPerBlock + tid;
      const int pos = k / (tile::kLanes / kPer), part = k % (tile::kLanes / kPer);
      const int h = h0 + pos / Cols, w = w0 + pos % Cols;
      const std::int64_t c = c0 + part * kPer;
      const bool in = k < kChunks && h >= 0 && h < h_size && w >= 0 && w < w_size && c < channels;
      offset[i] = in ? I(h) * h_stride + I(w) * w_stride + I(c) : I(0);
      inside |= unsigned(in) << i;
    }
  }

  // The tile's input slices: (Rows x Cols) from (ih0, iw0) of the input.
  __device__ __forceinline__ SliceStager(const DwArgs& a, const T* x_n, int ih0, int iw0, std::int64_t c0)
      : SliceStager(x_n, I(a.xs[1]), a.in[0], ih0, iw0, a.in[1], a.in[2], I(a.xs[2]), I(a.xs[3]), c0, a.channels) {}

  // Queue the copies of depth `id` into `buf`; the caller commits. The
  // offsets are never negative: as unsigned, each chunk's address is one
  // wide multiply-add from the depth's first element.
  __device__ __forceinline__ void stage(T* buf, int id) const {
    const bool slice_in = id >= 0 && id < depths;
    const T* slice = x + I(slice_in ? id : 0) * depth_stride;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const int k = i * cuda_plan::kThreadsPerBlock + tid;
      if (i + 1 < kIters || k < kChunks) {
        const bool in = slice_in && (inside >> i & 1u);
        copy16_async(buf + k * kPer, slice + static_cast<std::make_unsigned_t<I>>(offset[i]), in);
      }
    }
  }
};

// Row `row` of a staged slice, this lane's channel, as floats.
template <class T, int InCols>
__device__ __forceinline__ void read_row(const T* buf, int row, float (&xr)[InCols]) {
#pragma unroll
  for (int j = 0; j < InCols; ++j) xr[j] = to_float(buf[(row * InCols + j) * tile::kLanes + threadIdx.x]);
}

// The forward's input slices.
template <class T, class I>
using DataStager = SliceStager<T, I, tile::kInRows, tile::kDataInCols>;

// The forward's 27 weights of each lane's channel in shared memory,
// [lane][kh][kWeightRow] in the order the slice step reads them ((kd, kw)
// within a row kh, then three zeros), so a row's nine taps are three 16-byte
// reads (the 36-float lane stride keeps each quarter warp's reads on
// distinct banks).
constexpr int kWeightSlots = cuda_plan::kTileWeightSlots, kWeightRow = kWeightSlots / 3;
static_assert(kWeightRow % 4 == 0 && kWeightRow >= 9, "whole 16-byte groups of taps");

// Channel c's weight at tap (kd, kh, kw) as the 3x3x3 forward reads it
// (every axis reversed when a.flip), in float32; 0 past the channels. The
// tiled and pairs kernels' shared-memory copies of the weights.
template <class T, class I>
__device__ __forceinline__ float tap_weight(const DwArgs& a, std::int64_t c, int kd, int kh, int kw) {
  if (c >= a.channels) return 0.f;
  const int tap = a.flip ? 26 - (kd * 9 + kh * 3 + kw) : kd * 9 + kh * 3 + kw;
  return load(static_cast<const T*>(a.w) + I(c) * I(a.ws[0]) + I(tap / 9) * I(a.ws[1]) + I(tap / 3 % 3) * I(a.ws[2]) +
              I(tap % 3) * I(a.ws[3]));
}

// Where one thread's row of outputs goes: the output element of (depth 0,
// its row, the tile's first column, its channel), the W step and how many of
// its kDataCols columns are inside the output (none past the channels).
template <class T, class I>
struct RowStore {
  T* first;
  I depth_step, col_step;
  int cols;
  __device__ __forceinline__ RowStore(const DwArgs& a, const TileItem& t, std::int64_t c, T*) {
    const int oh = t.oh0 + int(threadIdx.y);
    first = static_cast<T*>(a.y_out) + I(t.n) * I(a.ys[0]) + I(oh) * I(a.ys[2]) + I(t.ow0) * I(a.ys[3]) +
            I(c) * I(a.ys[4]);
    depth_step = I(a.ys[1]);
    col_step = I(a.ys[3]);
    cols = oh < a.out[1] && c < a.channels ? min(tile::kDataCols, a.out[2] - t.ow0) : 0;
  }
  // The outputs of depth `od`, from float32 (the step's last slice).
  __device__ __forceinline__ void put(int od, const float (&v)[tile::kDataCols]) const {
    T* p = first + I(od) * depth_step;
#pragma unroll
    for (int j = 0; j < tile::kDataCols; ++j) {
      if (j < cols) store(p, v[j]);
      p += col_step;
    }
  }
};

// A warp's row of 16-bit outputs (kDataCols columns x Channels channels),
// written into its patch of shared memory, leaves as 16-byte chunks: chunk
// k = lane + 32 i is column k / (Channels / 8), channels 8 (k % (Channels /
// 8)) on, where per-element stores a lane would cost an address computation
// each. Needs the output's channels in 16-byte chunks (the planner's rule).
// ChunkStore (32 channels) and the pairs kernel's PairStore (64) fill the
// patch, then flush() it.
template <class T, class I, int Channels>
struct PatchChunks {
  static constexpr int kPerColumn = Channels / 8, kColumnsAWarp = 32 / kPerColumn;
  static constexpr int kPer = tile::kDataCols / kColumnsAWarp;  // chunks a lane
  static_assert(sizeof(T) == 2 && 32 % kPerColumn == 0 && tile::kDataCols % kColumnsAWarp == 0,
                "whole chunks a lane");
  T* chunk;  // this lane's first chunk at depth 0
  I depth_step, col_step;
  unsigned inside = 0;  // bit i: chunk i's column, row and channels are inside the output
  // c0: the block's first channel.
  __device__ __forceinline__ PatchChunks(const DwArgs& a, const TileItem& t, std::int64_t c0) {
    const int oh = t.oh0 + int(threadIdx.y), ow = t.ow0 + int(threadIdx.x) / kPerColumn;
    const std::int64_t c = c0 + threadIdx.x % kPerColumn * 8;
#pragma unroll
    for (int i = 0; i < kPer; ++i)
      inside |= unsigned(oh < a.out[1] && ow + kColumnsAWarp * i < a.out[2] && c < a.channels) << i;
    chunk = static_cast<T*>(a.y_out) + I(t.n) * I(a.ys[0]) + I(inside ? oh : 0) * I(a.ys[2]) +
            I(inside ? ow : 0) * I(a.ys[3]) + I(inside ? c : 0);
    depth_step = I(a.ys[1]);
    col_step = I(a.ys[3]);
  }
  // The patch (written by every lane of the warp) to depth od.
  __device__ __forceinline__ void flush(const void* patch, int od) const {
    __syncwarp();
    T* p = chunk + I(od) * depth_step;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const uint4 q = static_cast<const uint4*>(patch)[threadIdx.x + 32 * i];
      if (inside >> i & 1u) *reinterpret_cast<uint4*>(p + I(kColumnsAWarp * i) * col_step) = q;
    }
    __syncwarp();  // every lane has read the patch before the next row is written
  }
};

// The tiled forward's 16-bit outputs: a lane's channel, one element a column.
template <class T, class I>
struct ChunkStore {
  static_assert(tile::kLanes == 32, "a lane a channel");
  T* patch;  // the warp's [kDataCols][kLanes] in shared memory
  PatchChunks<T, I, tile::kLanes> out;
  __device__ __forceinline__ ChunkStore(const DwArgs& a, const TileItem& t, std::int64_t lane_c, T* patches)
      : patch(patches + threadIdx.y * tile::kDataCols * tile::kLanes), out(a, t, lane_c - threadIdx.x) {}
  __device__ __forceinline__ void put(int od, const float (&v)[tile::kDataCols]) const {
#pragma unroll
    for (int j = 0; j < tile::kDataCols; ++j) store(patch + j * tile::kLanes + threadIdx.x, v[j]);
    out.flush(patch, od);
  }
};

// One input slice (step s of the march, phase P = s % 3, so the rotating
// accumulator slots are compile-time indices): the slice's three rows feed
// the outputs at depths od = id + pad - kd, kd = 0..2, then the output whose
// last slice this was (kd = 2) is stored and its slot cleared for the depth
// that starts next. Slice s is in buffer s % Stages; one barrier a step: it
// says slice s has landed and that every thread is done with slice s - 1,
// whose buffer then takes slice s + Stages - 1 (Stages - 1 in flight while
// slice s is read). Measured on the H200, the float32 forward with two
// barriers a step (the next copies queued before the wait, as before) ran
// 2% slower than with one on 1x17x128x128x256 (0.1873 against 0.1833 ms).
template <int P, int Stages, class T, class I, class Out>
__device__ __forceinline__ void data_step(const DwArgs& a, const TileItem& t, int s, int steps, T* bufs,
                                          const DataStager<T, I>& stager, const Out& out_row,
                                          const float* w, float (&acc)[3][tile::kDataCols]) {
  if (s >= steps) return;
  constexpr int kSlice = tile::kDataSlice;
  const int id = t.od0 - a.pad[0] + s;
  copies_wait<Stages - 2>();  // this thread's copies of slice s have landed
  __syncthreads();
  if (s + Stages - 1 < steps) stager.stage(bufs + (s + Stages - 1) % Stages * kSlice, id + Stages - 1);
  copies_commit();  // a group every step (maybe empty), so the wait's count holds
  const bool slice_in = id >= 0 && id < a.in[0];  // else padding: no products (a zero slice is staged)
  {
    const T* buf = bufs + s % Stages * kSlice;
#pragma unroll
    for (int kh = 0; kh < 3; ++kh) {
      float xr[tile::kDataInCols];
      read_row(buf, threadIdx.y + kh, xr);
      float wv[kWeightRow];  // row kh's taps (kd, kw)
#pragma unroll
      for (int g = 0; g < kWeightRow / 4; ++g) {
        const float4 q = reinterpret_cast<const float4*>(w + kh * kWeightRow)[g];
        wv[4 * g] = q.x, wv[4 * g + 1] = q.y, wv[4 * g + 2] = q.z, wv[4 * g + 3] = q.w;
      }
#pragma unroll
      for (int kd = 0; kd < 3; ++kd) {
        const int od = id + a.pad[0] - kd;
        if (!slice_in || od < t.od0 || od >= t.od1) continue;
        constexpr int kSlots = 3;
        float(&out)[tile::kDataCols] = acc[(P - kd + kSlots) % kSlots];
        const float* wk = wv + kd * 3;
        const float w0 = wk[0], w1 = wk[1], w2 = wk[2];
#pragma unroll
        for (int j = 0; j < tile::kDataCols; ++j)  // three fused multiply-adds, no separate add
          out[j] = fmaf(xr[j + 2], w2, fmaf(xr[j + 1], w1, fmaf(xr[j], w0, out[j])));
      }
    }
  }
  float(&done)[tile::kDataCols] = acc[(P + 1) % 3];
  const int od = id + a.pad[0] - 2;
  if (od >= t.od0 && od < t.od1) out_row.put(od, done);
#pragma unroll
  for (int j = 0; j < tile::kDataCols; ++j) done[j] = 0.f;
}

// Forward / input gradient, 3x3x3 at stride 1: block (spatial item, 32
// channels); grid.x = items, each item a tile and d_seg output depths.
// Dynamic shared memory (plan.shared_bytes): Stages slices, then the
// weights [kTileChannels][kWeightSlots] (in shared memory rather than
// registers: 64 registers a thread let four blocks share an SM), then for
// 16-bit outputs each warp's patch (ChunkStore).
template <class T, class I, int Stages, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_data_tiled(DwArgs a, int d_seg, std::int64_t items) {
  allow_dependent_launch();  // the fix-up grid may queue now (depthwise_nonfinite.cuh)
  static_assert(Stages >= 3, "one barrier a step needs two slices in flight beside the one read");
  // (Every kernel of the file declares the one dynamic array alike: 128-byte
  // alignment for the pairs kernel's bulk copies.)
  extern __shared__ __align__(128) unsigned char smem[];
  T* bufs = reinterpret_cast<T*>(smem);
  if (blockIdx.x >= items) return;  // an empty problem still launches one block
  const TileItem t = tile_item<tile::kDataCols>(a, blockIdx.x, d_seg);
  const std::int64_t c = std::int64_t(blockIdx.y) * tile::kLanes + threadIdx.x;
  // The weights, flipped along every axis when asked; visible to every
  // thread after the first step's barrier.
  float* ws = reinterpret_cast<float*>(smem + Stages * tile::kDataSlice * sizeof(T));
  for (int k = threadIdx.y; k < kWeightSlots; k += tile::kRows) {
    const int kh = k / kWeightRow, kd = k % kWeightRow / 3, kw = k % 3;  // slot k's tap (kd 3: padding)
    ws[threadIdx.x * kWeightSlots + k] = kd < 3 ? tap_weight<T, I>(a, c, kd, kh, kw) : 0.f;
  }
  const float* w = ws + threadIdx.x * kWeightSlots;
  const DataStager<T, I> stager(a, static_cast<const T*>(a.x) + I(t.n) * I(a.xs[0]), t.oh0 - a.pad[1],
                                 t.ow0 - a.pad[2], c - threadIdx.x);
  // 16-bit outputs through shared memory (after the weights), float32 ones directly.
  using Out = std::conditional_t<sizeof(T) == 2, ChunkStore<T, I>, RowStore<T, I>>;
  T* patches = reinterpret_cast<T*>(ws + tile::kLanes * kWeightSlots);
  const Out out_row(a, t, c, patches);
  float acc[3][tile::kDataCols];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < tile::kDataCols; ++j) acc[i][j] = 0.f;
  // Slices od0 - pad .. od1 - 1 - pad + 2: two more than the outputs.
  const int steps = t.od1 - t.od0 + 2;
#pragma unroll
  for (int q = 0; q < Stages - 1; ++q) {
    if (q < steps) stager.stage(bufs + q * tile::kDataSlice, t.od0 - a.pad[0] + q);
    copies_commit();
  }
  for (int s = 0; s < steps; s += 3) {
    data_step<0, Stages, T, I, Out>(a, t, s, steps, bufs, stager, out_row, w, acc);
    data_step<1, Stages, T, I, Out>(a, t, s + 1, steps, bufs, stager, out_row, w, acc);
    data_step<2, Stages, T, I, Out>(a, t, s + 2, steps, bufs, stager, out_row, w, acc);
  }
  copies_wait<0>();  // nothing left in flight at exit
}

// Weight gradient, one input slice (step s of the march, phase P = s % 3):
// the output-gradient row of depth od0 + s (whose first slice this is)
// comes out of shared memory into the rotating slot P, then each of the
// slice's three rows feeds the 3 x 3 taps of the output depths that read
// it (od = id + pad - kd), from the gradient rows held in registers. A tap's
// sum still runs over the output depths in order, then along W. Slice s and
// gradient tile s are in buffer s % Stages; Stages - 1 of each in flight;
// one barrier a step, as in the forward's step.
template <int P, int Stages, class T, class I>
__device__ __forceinline__ void wgrad_step(const DwArgs& a, const TileItem& t, int s, int steps, T* slices,
                                           T* grads, const SliceStager<T, I>& x_stager,
                                           const SliceStager<T, I, tile::kRows, tile::kCols>& g_stager,
                                           float (&gr)[3][tile::kCols], float (&acc)[27]) {
  if (s >= steps) return;
  constexpr int kSlice = tile::kSlice, kGrad = tile::kRows * tile::kCols * tile::kLanes;
  const int id0 = t.od0 - a.pad[0], id = id0 + s, depths = t.od1 - t.od0;
  copies_wait<Stages - 2>();  // this thread's copies of slice s and gradient tile s have landed
  __syncthreads();            // ... everyone's; and everyone is done with step s - 1's buffers
  const int q = s + Stages - 1;
  if (q < steps) {
    x_stager.stage(slices + q % Stages * kSlice, id0 + q);
    if (q < depths) g_stager.stage(grads + q % Stages * kGrad, t.od0 + q);
  }
  copies_commit();
  if (s < depths) {
    const T* g = grads + s % Stages * kGrad + threadIdx.y * tile::kCols * tile::kLanes + threadIdx.x;
#pragma unroll
    for (int j = 0; j < tile::kCols; ++j) gr[P][j] = to_float(g[j * tile::kLanes]);
  }
  if (id < 0 || id >= a.in[0]) {  // padding: those products are zero...
    // ... unless an output-gradient element is not finite and the rule
    // multiplies the padding (conv3d's weight gradient: 0 * NaN = NaN, as
    // torch): then that kd's nine taps take the zero slice's products, NaN.
    if (!a.multiply_padding) return;
#pragma unroll
    for (int kd = 0; kd < 3; ++kd) {
      if (s < kd || s - kd >= depths) continue;
      const float(&gk)[tile::kCols] = gr[(P - kd + 3) % 3];
      bool finite = true;
#pragma unroll
      for (int j = 0; j < tile::kCols; ++j) finite &= isfinite(gk[j]) != 0;
      if (finite) continue;
#pragma unroll
      for (int k = 0; k < 9; ++k) acc[kd * 9 + k] = __int_as_float(0x7fffffff);
    }
    return;
  }
  const T* buf = slices + s % Stages * kSlice;
#pragma unroll
  for (int kh = 0; kh < 3; ++kh) {
    float xr[tile::kInCols];
    read_row(buf, threadIdx.y + kh, xr);
#pragma unroll
    for (int kd = 0; kd < 3; ++kd) {
      if (s < kd || s - kd >= depths) continue;  // output depth od0 + s - kd outside the item
      const float(&gk)[tile::kCols] = gr[(P - kd + 3) % 3];
#pragma unroll
      for (int kw = 0; kw < 3; ++kw) {
        float& sum = acc[(kd * 3 + kh) * 3 + kw];
#pragma unroll
        for (int j = 0; j < tile::kCols; ++j) sum = fmaf(gk[j], xr[j + kw], sum);
      }
    }
  }
}

// Weight gradient, 3x3x3 at stride 1: block (chunk, 32 channels) sums the
// items chunk, chunk + chunks, ... (a fixed order). Per item it marches along
// the input slices as the forward does: each staged input row feeds the
// three output depths that read it, so it is read from shared memory once
// (not once per output depth), and the output-gradient tiles are staged
// alongside (cp.async) and held three depths at a time in registers. Each
// thread keeps the 27 sums of its channel for its row of kTileCols outputs;
// at the end the block's rows are added in row order into
// partials[chunk][tap][c]. Dynamic shared memory (plan.shared_bytes): Stages
// input slices and Stages gradient tiles, later the rows' 27 sums per lane.
template <class T, class I, int Stages, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_wgrad_tiled(DwArgs a, float* partials, int d_seg, std::int64_t items, std::int64_t chunks) {
  static_assert(Stages >= 3, "one barrier a step needs two steps in flight beside the one read");
  extern __shared__ __align__(128) unsigned char smem[];
  constexpr int kSlice = tile::kSlice, kGrad = tile::kRows * tile::kCols * tile::kLanes;
  T* slices = reinterpret_cast<T*>(smem);
  T* grads = slices + Stages * kSlice;
  const std::int64_t c0 = std::int64_t(blockIdx.y) * tile::kLanes, c = c0 + threadIdx.x;
  float acc[27];
#pragma unroll
  for (int k = 0; k < 27; ++k) acc[k] = 0.f;
  for (std::int64_t item = blockIdx.x; item < items; item += chunks) {
    const TileItem t = tile_item<tile::kCols>(a, item, d_seg);
    const SliceStager<T, I> x_stager(a, static_cast<const T*>(a.x) + I(t.n) * I(a.xs[0]), t.oh0 - a.pad[1],
                                     t.ow0 - a.pad[2], c0);
    const SliceStager<T, I, tile::kRows, tile::kCols> g_stager(
        static_cast<const T*>(a.y_in) + I(t.n) * I(a.ys[0]), I(a.ys[1]), a.out[0], t.oh0, t.ow0, a.out[1], a.out[2],
        I(a.ys[2]), I(a.ys[3]), c0, a.channels);
    const int steps = t.od1 - t.od0 + 2;  // input slices od0 - pad .. od1 - 1 - pad + 2
    __syncthreads();  // the previous item's last reads of the buffers are done
#pragma unroll
    for (int q = 0; q < Stages - 1; ++q) {
      if (q < steps) x_stager.stage(slices + q * kSlice, t.od0 - a.pad[0] + q);
      if (q < t.od1 - t.od0) g_stager.stage(grads + q * kGrad, t.od0 + q);
      copies_commit();
    }
    float gr[3][tile::kCols];
    for (int s = 0; s < steps; s += 3) {
      wgrad_step<0, Stages>(a, t, s, steps, slices, grads, x_stager, g_stager, gr, acc);
      wgrad_step<1, Stages>(a, t, s + 1, steps, slices, grads, x_stager, g_stager, gr, acc);
      wgrad_step<2, Stages>(a, t, s + 2, steps, slices, grads, x_stager, g_stager, gr, acc);
    }
  }
  copies_wait<0>();
  __syncthreads();  // the buffers are free: they now hold every row's sums
  float* rows = reinterpret_cast<float*>(smem);  // [27][kRows][kLanes]
#pragma unroll
  for (int k = 0; k < 27; ++k) rows[(k * tile::kRows + threadIdx.y) * tile::kLanes + threadIdx.x] = acc[k];
  __syncthreads();
  // 27 taps x 32 lanes sums, spread over the block's threads; rows in order.
  for (int k = threadIdx.y; k < 27; k += tile::kRows) {
    if (c >= a.channels) continue;
    float sum = 0.f;
    for (int r = 0; r < tile::kRows; ++r) sum += rows[(k * tile::kRows + r) * tile::kLanes + threadIdx.x];
    partials[(std::int64_t(blockIdx.x) * 27 + k) * a.channels + c] = sum;
  }
}

}  // namespace
}  // namespace volconv::cuda
