// Tiled depthwise kernels for a 3x3x3 kernel at stride 1 without dilation
// (the common case): a block owns a tile of kTileRows x kTileCols outputs
// along (H, W) for 32 x Cpl channels and marches along D. Each input slice
// of the tile (plus its one-element halo) is copied once into shared memory
// with cp.async (zeros outside the input) while earlier slices are
// computed, so each input element is read from global memory about once
// instead of once per output row that reads it. Lane = Cpl adjacent
// channels (one shared-memory read of a position is one conflict-free row:
// in 16-bit storage Cpl = 2, so a lane's read is one 32-bit word and feeds
// twice the multiply-adds); warp = output row; each thread keeps kTileCols
// outputs along W for the three depths in flight.
// Included by depthwise_kernels.cuh (after its helpers).
#pragma once

namespace volconv::cuda {
namespace {

namespace tile {
constexpr int kRows = cuda_plan::kTileRows, kCols = cuda_plan::kTileCols, kLanes = 32;
constexpr int kInRows = kRows + 2, kInCols = kCols + 2;  // the tile's inputs: one halo element per side
static_assert(kRows * kLanes == cuda_plan::kThreadsPerBlock, "one warp per output row of the tile");
// Elements of one staged input slice, Cpl channels a lane.
template <int Cpl>
__host__ __device__ constexpr int slice_elems() {
  return kInRows * kInCols * kLanes * Cpl;
}
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

__device__ __forceinline__ TileItem tile_item(const DwArgs& a, std::int64_t item, int d_seg) {
  const int w_tiles = (a.out[2] + tile::kCols - 1) / tile::kCols;
  const int h_tiles = (a.out[1] + tile::kRows - 1) / tile::kRows;
  const int segs = (a.out[0] + d_seg - 1) / d_seg;
  TileItem t;
  t.ow0 = int(item % w_tiles) * tile::kCols;
  item /= w_tiles;
  t.oh0 = int(item % h_tiles) * tile::kRows;
  item /= h_tiles;
  t.od0 = int(item % segs) * d_seg;
  t.od1 = min(t.od0 + d_seg, a.out[0]);
  t.n = item / segs;
  return t;
}

// Copies the tile's input slices into shared memory, laid out
// [row][col][channel]: kInRows x kInCols positions from (ih0, iw0),
// channels c0..c0 + 32 * Cpl - 1, as 16-byte chunks; zeros outside the input
// or past the channels. Each thread's chunks and their offsets within a
// slice are worked out once per item, so staging a slice costs a few
// instructions. x is batch n's first element; its channel stride is 1.
template <class T, class I, int Cpl>
struct SliceStager {
  static constexpr int kPer = 16 / int(sizeof(T));  // elements per chunk
  static constexpr int kPerPos = tile::kLanes * Cpl / kPer;  // chunks per position
  static constexpr int kChunks = tile::kInRows * tile::kInCols * kPerPos;
  static constexpr int kIters = (kChunks + cuda_plan::kThreadsPerBlock - 1) / cuda_plan::kThreadsPerBlock;
  static_assert(kIters <= 32, "one bit per chunk of a thread");
  I offset[kIters];     // of chunk i from the slice's first element
  unsigned inside = 0;  // bit i: chunk i is inside the input along H and W and inside C
  const T* x;
  I slice_stride;
  int depth;

  __device__ __forceinline__ SliceStager(const DwArgs& a, const T* x_n, int ih0, int iw0, std::int64_t c0)
      : x(x_n), slice_stride(I(a.xs[1])), depth(a.in[0]) {
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const int k = i * cuda_plan::kThreadsPerBlock + tid;
      const int pos = k / kPerPos, part = k % kPerPos;
      const int ih = ih0 + pos / tile::kInCols, iw = iw0 + pos % tile::kInCols;
      const std::int64_t c = c0 + part * kPer;
      const bool in = k < kChunks && ih >= 0 && ih < a.in[1] && iw >= 0 && iw < a.in[2] && c < a.channels;
      offset[i] = in ? I(ih) * I(a.xs[2]) + I(iw) * I(a.xs[3]) + I(c) : I(0);
      inside |= unsigned(in) << i;
    }
  }

  // Queue the copies of input slice `id` into `buf`; the caller commits.
  __device__ __forceinline__ void stage(T* buf, int id) const {
    const bool slice_in = id >= 0 && id < depth;
    const T* slice = x + I(slice_in ? id : 0) * slice_stride;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
    for (int i = 0; i < kIters; ++i) {
      const int k = i * cuda_plan::kThreadsPerBlock + tid;
      if (i + 1 < kIters || k < kChunks) {
        const bool in = slice_in && (inside >> i & 1u);
        copy16_async(buf + k * kPer, slice + offset[i], in);
      }
    }
  }
};

// Row `row` of a staged slice, this lane's Cpl channels, as floats (`buf`
// already points at the lane's first channel; Cpl elements are one load).
template <int Cpl, class T>
__device__ __forceinline__ void read_row(const T* buf, int row, float (&xr)[tile::kInCols][Cpl]) {
#pragma unroll
  for (int j = 0; j < tile::kInCols; ++j)
    load_channels<Cpl>(buf + (row * tile::kInCols + j) * tile::kLanes * Cpl, xr[j]);
}

// The Cpl channels of a lane from c on, each stored where inside the channels.
template <int Cpl, class T, class I>
__device__ __forceinline__ void store_lane(T* p, I channel_stride, std::int64_t c, std::int64_t channels,
                                           const float (&v)[Cpl]) {
#pragma unroll
  for (int k = 0; k < Cpl; ++k)
    if (c + k < channels) store(p + I(k) * channel_stride, v[k]);
}

// The 27 weights of a lane's Cpl channels, flipped along every axis when
// asked: in registers (WReg) or in shared memory, [27][32 * Cpl] floats at
// ws (visible to every thread after the first step's barrier).
template <int Cpl, bool WReg>
struct TileWeights;

template <int Cpl>
struct TileWeights<Cpl, true> {
  float w[27][Cpl];
  template <class T, class I>
  __device__ __forceinline__ void init(const DwArgs& a, std::int64_t c, float*) {
#pragma unroll
    for (int k = 0; k < 27; ++k) {
      const int tap = a.flip ? 26 - k : k;
#pragma unroll
      for (int v = 0; v < Cpl; ++v)
        w[k][v] = c + v < a.channels ? load(static_cast<const T*>(a.w) + I(c + v) * I(a.ws[0]) +
                                            I(tap / 9) * I(a.ws[1]) + I(tap / 3 % 3) * I(a.ws[2]) +
                                            I(tap % 3) * I(a.ws[3]))
                                     : 0.f;
    }
  }
  __device__ __forceinline__ void get(int k, float (&out)[Cpl]) const {
#pragma unroll
    for (int v = 0; v < Cpl; ++v) out[v] = w[k][v];
  }
};

template <int Cpl>
struct TileWeights<Cpl, false> {
  const float* w;  // this lane's first weight
  template <class T, class I>
  __device__ __forceinline__ void init(const DwArgs& a, std::int64_t c, float* ws) {
    for (int k = threadIdx.y; k < 27; k += tile::kRows) {
      const int tap = a.flip ? 26 - k : k;
#pragma unroll
      for (int v = 0; v < Cpl; ++v)
        ws[(k * tile::kLanes + threadIdx.x) * Cpl + v] =
            c + v < a.channels ? load(static_cast<const T*>(a.w) + I(c + v) * I(a.ws[0]) + I(tap / 9) * I(a.ws[1]) +
                                      I(tap / 3 % 3) * I(a.ws[2]) + I(tap % 3) * I(a.ws[3]))
                               : 0.f;
    }
    w = ws + threadIdx.x * Cpl;
  }
  __device__ __forceinline__ void get(int k, float (&out)[Cpl]) const {
    load_channels<Cpl>(w + k * tile::kLanes * Cpl, out);
  }
};

// One input slice (step s of the march, phase P = s % 3, so the rotating
// accumulator slots are compile-time indices): the slice's three rows feed
// the outputs at depths od = id + pad - kd, kd = 0..2, then the output whose
// last slice this was (kd = 2) is stored and its slot cleared for the depth
// that starts next. Slice s is in buffer s % Stages; Stages - 1 slices are
// in flight while one is read.
template <int P, int Stages, int Cpl, class W, class T, class I>
__device__ __forceinline__ void data_step(const DwArgs& a, const TileItem& t, int s, int steps, T* bufs,
                                          const SliceStager<T, I, Cpl>& stager, T* y, std::int64_t c, const W& w,
                                          float (&acc)[3][tile::kCols][Cpl]) {
  if (s >= steps) return;
  constexpr int kSlice = tile::slice_elems<Cpl>();
  const int id = t.od0 - a.pad[0] + s;
  __syncthreads();  // every thread is done with the buffer of slice s - 1, where slice s + Stages - 1 goes
  if (s + Stages - 1 < steps) stager.stage(bufs + (s + Stages - 1) % Stages * kSlice, id + Stages - 1);
  copies_commit();
  copies_wait<Stages - 1>();
  __syncthreads();  // slice s has landed, from every thread's copies
  if (id >= 0 && id < a.in[0]) {
    const T* buf = bufs + s % Stages * kSlice + threadIdx.x * Cpl;
#pragma unroll
    for (int kh = 0; kh < 3; ++kh) {
      float xr[tile::kInCols][Cpl];
      read_row<Cpl>(buf, threadIdx.y + kh, xr);
#pragma unroll
      for (int kd = 0; kd < 3; ++kd) {
        const int od = id + a.pad[0] - kd;
        if (od < t.od0 || od >= t.od1) continue;
        constexpr int kSlots = 3;
        float(&out)[tile::kCols][Cpl] = acc[(P - kd + kSlots) % kSlots];
        float w0[Cpl], w1[Cpl], w2[Cpl];
        w.get((kd * 3 + kh) * 3, w0);
        w.get((kd * 3 + kh) * 3 + 1, w1);
        w.get((kd * 3 + kh) * 3 + 2, w2);
#pragma unroll
        for (int j = 0; j < tile::kCols; ++j)  // three fused multiply-adds, no separate add
#pragma unroll
          for (int v = 0; v < Cpl; ++v)
            out[j][v] = fmaf(xr[j + 2][v], w2[v], fmaf(xr[j + 1][v], w1[v], fmaf(xr[j][v], w0[v], out[j][v])));
      }
    }
  }
  float(&done)[tile::kCols][Cpl] = acc[(P + 1) % 3];
  const int od = id + a.pad[0] - 2;
  const int oh = t.oh0 + int(threadIdx.y);
  if (od >= t.od0 && od < t.od1 && oh < a.out[1] && c < a.channels) {
    T* row = y + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) + I(c) * I(a.ys[4]);
#pragma unroll
    for (int j = 0; j < tile::kCols; ++j)
      if (t.ow0 + j < a.out[2]) store_lane<Cpl>(row + I(t.ow0 + j) * I(a.ys[3]), I(a.ys[4]), c, a.channels, done[j]);
  }
#pragma unroll
  for (int j = 0; j < tile::kCols; ++j)
#pragma unroll
    for (int v = 0; v < Cpl; ++v) done[j][v] = 0.f;
}

// Forward / input gradient, 3x3x3 at stride 1: block (spatial item, 32 x Cpl
// channels); grid.x = items, each item a tile and d_seg output depths.
// Dynamic shared memory (plan.shared_bytes): Stages slices, then (unless
// WReg keeps them in registers) the 27 weights of each lane's channels.
template <class T, class I, int Stages, int Cpl, bool WReg, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_data_tiled(DwArgs a, int d_seg, std::int64_t items) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kSlice = tile::slice_elems<Cpl>();
  T* bufs = reinterpret_cast<T*>(smem);
  if (blockIdx.x >= items) return;  // an empty problem still launches one block
  const TileItem t = tile_item(a, blockIdx.x, d_seg);
  const std::int64_t c0 = std::int64_t(blockIdx.y) * tile::kLanes * Cpl, c = c0 + threadIdx.x * Cpl;
  TileWeights<Cpl, WReg> w;
  w.template init<T, I>(a, c, reinterpret_cast<float*>(smem + Stages * kSlice * sizeof(T)));
  const SliceStager<T, I, Cpl> stager(a, static_cast<const T*>(a.x) + I(t.n) * I(a.xs[0]), t.oh0 - a.pad[1],
                                      t.ow0 - a.pad[2], c0);
  T* y = static_cast<T*>(a.y_out) + I(t.n) * I(a.ys[0]);
  float acc[3][tile::kCols][Cpl];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < tile::kCols; ++j)
#pragma unroll
      for (int v = 0; v < Cpl; ++v) acc[i][j][v] = 0.f;
  // Slices od0 - pad .. od1 - 1 - pad + 2: two more than the outputs.
  const int steps = t.od1 - t.od0 + 2;
#pragma unroll
  for (int q = 0; q < Stages - 1; ++q) {
    if (q < steps) stager.stage(bufs + q * kSlice, t.od0 - a.pad[0] + q);
    copies_commit();
  }
  for (int s = 0; s < steps; s += 3) {
    data_step<0, Stages, Cpl>(a, t, s, steps, bufs, stager, y, c, w, acc);
    data_step<1, Stages, Cpl>(a, t, s + 1, steps, bufs, stager, y, c, w, acc);
    data_step<2, Stages, Cpl>(a, t, s + 2, steps, bufs, stager, y, c, w, acc);
  }
  copies_wait<0>();  // nothing left in flight at exit
}

// Weight gradient, pass 1, 3x3x3 at stride 1: block (chunk, 32 x Cpl
// channels) sums the items chunk, chunk + chunks, ... (a fixed order). Per
// item it marches along the input slices as the forward does (Stages - 1
// in flight): each staged row feeds the three output depths that read it,
// whose output-gradient rows stay in registers (three rotating slots, a
// row loaded when its depth starts). Each thread keeps the 27 sums of its
// channels for its row of kTileCols outputs; a tap's sum still runs over the
// output depths in order, then along W. At the end the block's rows are
// added in row order into partials[chunk][tap][c]. Dynamic shared memory
// (plan.shared_bytes): the slices, later the rows' 27 sums per channel.
template <int P, int Stages, int Cpl, class T, class I>
__device__ __forceinline__ void wgrad_step(const DwArgs& a, const TileItem& t, int s, int steps, T* bufs,
                                           const SliceStager<T, I, Cpl>& stager, const T* g, bool row_in,
                                           std::int64_t c, float (&gr)[3][tile::kCols][Cpl],
                                           float (&acc)[27][Cpl]) {
  if (s >= steps) return;
  constexpr int kSlice = tile::slice_elems<Cpl>();
  const int id = t.od0 - a.pad[0] + s;
  // The output depth od0 + s starts at this slice (its tap kd = 0).
  float(&fresh)[tile::kCols][Cpl] = gr[P];
  const int od_new = t.od0 + s;
#pragma unroll
  for (int j = 0; j < tile::kCols; ++j)
#pragma unroll
    for (int v = 0; v < Cpl; ++v)
      fresh[j][v] = row_in && od_new < t.od1 && t.ow0 + j < a.out[2] && c + v < a.channels
                        ? load(g + I(od_new) * I(a.ys[1]) + I(t.ow0 + j) * I(a.ys[3]) + I(v) * I(a.ys[4]))
                        : 0.f;
  __syncthreads();  // every thread is done with the buffer of slice s - 1, where slice s + Stages - 1 goes
  if (s + Stages - 1 < steps) stager.stage(bufs + (s + Stages - 1) % Stages * kSlice, id + Stages - 1);
  copies_commit();
  copies_wait<Stages - 1>();
  __syncthreads();  // slice s has landed, from every thread's copies
  if (id < 0 || id >= a.in[0]) return;  // padding: those products are zero
  const T* buf = bufs + s % Stages * kSlice + threadIdx.x * Cpl;
#pragma unroll
  for (int kh = 0; kh < 3; ++kh) {
    float xr[tile::kInCols][Cpl];
    read_row<Cpl>(buf, threadIdx.y + kh, xr);
#pragma unroll
    for (int kd = 0; kd < 3; ++kd) {
      const int od = id + a.pad[0] - kd;
      if (od < t.od0 || od >= t.od1) continue;
      const float(&gk)[tile::kCols][Cpl] = gr[(P - kd + 3) % 3];
#pragma unroll
      for (int kw = 0; kw < 3; ++kw)
#pragma unroll
        for (int v = 0; v < Cpl; ++v) {
          float& sum = acc[(kd * 3 + kh) * 3 + kw][v];
#pragma unroll
          for (int j = 0; j < tile::kCols; ++j) sum = fmaf(gk[j][v], xr[j + kw][v], sum);
        }
    }
  }
}

template <class T, class I, int Stages, int Cpl, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_wgrad_tiled(DwArgs a, float* partials, int d_seg, std::int64_t items, std::int64_t chunks) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* bufs = reinterpret_cast<T*>(smem);
  constexpr int kSlice = tile::slice_elems<Cpl>();
  const std::int64_t c0 = std::int64_t(blockIdx.y) * tile::kLanes * Cpl, c = c0 + threadIdx.x * Cpl;
  float acc[27][Cpl];
#pragma unroll
  for (int k = 0; k < 27; ++k)
#pragma unroll
    for (int v = 0; v < Cpl; ++v) acc[k][v] = 0.f;
  for (std::int64_t item = blockIdx.x; item < items; item += chunks) {
    const TileItem t = tile_item(a, item, d_seg);
    const SliceStager<T, I, Cpl> stager(a, static_cast<const T*>(a.x) + I(t.n) * I(a.xs[0]), t.oh0 - a.pad[1],
                                        t.ow0 - a.pad[2], c0);
    const int oh = t.oh0 + int(threadIdx.y);
    const bool row_in = oh < a.out[1];
    const T* g = static_cast<const T*>(a.y_in) + I(t.n) * I(a.ys[0]) + I(row_in ? oh : 0) * I(a.ys[2]) +
                 I(c < a.channels ? c : 0) * I(a.ys[4]);
    const int steps = t.od1 - t.od0 + 2;  // input slices od0 - pad .. od1 - 1 - pad + 2
    __syncthreads();  // the previous item's last reads of the slices are done
#pragma unroll
    for (int q = 0; q < Stages - 1; ++q) {
      if (q < steps) stager.stage(bufs + q * kSlice, t.od0 - a.pad[0] + q);
      copies_commit();
    }
    float gr[3][tile::kCols][Cpl];
    for (int s = 0; s < steps; s += 3) {
      wgrad_step<0, Stages, Cpl>(a, t, s, steps, bufs, stager, g, row_in, c, gr, acc);
      wgrad_step<1, Stages, Cpl>(a, t, s + 1, steps, bufs, stager, g, row_in, c, gr, acc);
      wgrad_step<2, Stages, Cpl>(a, t, s + 2, steps, bufs, stager, g, row_in, c, gr, acc);
    }
  }
  copies_wait<0>();
  __syncthreads();  // the slices are free: they now hold every row's sums
  constexpr int kBlockC = tile::kLanes * Cpl;
  float* rows = reinterpret_cast<float*>(smem);  // [27][kRows][kBlockC]
#pragma unroll
  for (int k = 0; k < 27; ++k)
#pragma unroll
    for (int v = 0; v < Cpl; ++v) rows[(k * tile::kRows + threadIdx.y) * kBlockC + threadIdx.x * Cpl + v] = acc[k][v];
  __syncthreads();
  // 27 taps x kBlockC sums, spread over the block's threads; rows in order.
  for (int i = threadIdx.y * tile::kLanes + threadIdx.x; i < 27 * kBlockC; i += cuda_plan::kThreadsPerBlock) {
    const int k = i / kBlockC, cc = i % kBlockC;
    if (c0 + cc >= a.channels) continue;
    float sum = 0.f;
    for (int r = 0; r < tile::kRows; ++r) sum += rows[(k * tile::kRows + r) * kBlockC + cc];
    partials[(std::int64_t(blockIdx.x) * 27 + k) * a.channels + c0 + cc] = sum;
  }
}

}  // namespace
}  // namespace volconv::cuda
