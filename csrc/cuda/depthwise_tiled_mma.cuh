// The tiled forward / input gradient for 16-bit storage (bfloat16, float16)
// on tensor cores: the same items, staged slices and march along D as
// dw_data_tiled (depthwise_tiled.cuh), but each slice's products are
// mma.sync instructions instead of fused multiply-adds. The FFMA kernel
// issues ~400 instructions a warp's slice step for its 216 multiply-adds a
// thread and converts every 16-bit input it reads; here a warp's step is
// 12 ldmatrix and 36 mma, and the tensor cores read 16-bit operands as
// they are (exact products, float32 sums).
//
// A depthwise filter differs per channel, so it enters an mma as a diagonal:
// tile M = 16 output positions (two output rows of the tile's 8 columns),
// N = 8 channels (one 16-byte chunk of each staged position), K = 16 = the 8
// channels of the input positions at kw = 0 and kw = 1 (one ldmatrix row
// each), B[(kw, c')][c] = w[c][kd][kh][kw] when c' = c, else 0; a second,
// m16n8k8 mma takes kw = 2. So 1/8 of the tensor cores' products are
// useful, which still leaves them ahead of the FFMA pipe.
//
// Warp = one 8-channel chunk (threadIdx.y % 4) x four output rows of the
// tile (threadIdx.y / 4 picks which four): two mma tiles, each with three
// rotating accumulators (output depths id + pad - kd) as in data_step.
//
// Non-finite inputs: the diagonal's zeros multiply the other seven channels'
// inputs, and 0 * inf is NaN, so an inf or NaN would leak into the other
// channels of its chunk. Each thread checks the chunks it staged; a block
// that sees one redoes its whole item with the FFMA march (data_tiled_item),
// so NaNs land exactly where they do for torch (and the FFMA kernel).
// Included by depthwise_kernels.cuh after depthwise_tiled.cuh.
#pragma once

namespace volconv::cuda {
namespace {

namespace tc {
constexpr int kChunkChannels = 8;  // one 16-byte chunk of 16-bit channels = the mma's N
constexpr int kChunks = tile::kLanes / kChunkChannels;
constexpr int kRowBytes = tile::kDataInCols * tile::kLanes * 2;  // one staged input row
static_assert(cuda_plan::kThreadsPerBlock / 32 == 2 * kChunks, "warps = chunks x two halves of the tile's rows");
static_assert(tile::kRows == 8 && tile::kDataCols == 8, "a warp's four rows are two mma tiles of 2 x 8 positions");
}  // namespace tc

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x2(unsigned (&r)[2], unsigned address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(address));
}

// d += a (16 x 16, row-major) * b (16 x 8, column-major), float32 sums.
template <class T>
__device__ __forceinline__ void mma_k16(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// d += a (16 x 8) * b (8 x 8).
template <class T>
__device__ __forceinline__ void mma_k8(float (&d)[4], const unsigned (&a)[2], unsigned b) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
  else
    asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b));
}

// The warp's 27 taps as diagonal B fragments, kept in registers for the
// whole item: per (kd, kh), kw = 0 and 1 for the k16 mma and kw = 2 for the
// k8 one. A lane holds B[k][n] for n = lane / 4 (the chunk's channel) and
// k = 2 (lane % 4) + {0, 1} (+ 8): the diagonal entry is the lane's when
// lane % 4 == n / 2, in the pair's half n % 2; every other entry is zero.
struct TcWeights {
  unsigned k16[9][2], k8[9];
};

template <class T, class I>
__device__ __forceinline__ TcWeights tc_weights(const DwArgs& a, std::int64_t chunk_c0) {
  const int lane = threadIdx.x, n = lane / 4;
  const std::int64_t c = chunk_c0 + n;
  const bool mine = lane % 4 == n / 2 && c < a.channels;
  const int half = n % 2 * 16;
  const auto* w = static_cast<const unsigned short*>(a.w);
  TcWeights b;
#pragma unroll
  for (int kd = 0; kd < 3; ++kd)
#pragma unroll
    for (int kh = 0; kh < 3; ++kh) {
      unsigned v[3];
#pragma unroll
      for (int kw = 0; kw < 3; ++kw) {
        const int tap = a.flip ? 26 - (kd * 9 + kh * 3 + kw) : kd * 9 + kh * 3 + kw;
        v[kw] = mine ? unsigned(__ldg(w + I(c) * I(a.ws[0]) + I(tap / 9) * I(a.ws[1]) + I(tap / 3 % 3) * I(a.ws[2]) +
                                      I(tap % 3) * I(a.ws[3])))
                           << half
                     : 0u;
      }
      b.k16[kd * 3 + kh][0] = v[0], b.k16[kd * 3 + kh][1] = v[1], b.k8[kd * 3 + kh] = v[2];
    }
  return b;
}

// Where a lane's accumulators go: the C fragment of tile mt holds, per
// lane, channels 2 (lane % 4) + {0, 1} of the chunk at column lane / 4 of
// output rows 2 mt (c[0], c[1]) and 2 mt + 1 (c[2], c[3]) of the warp's four:
// one 4-byte store of a channel pair per row.
template <class T, class I>
struct TcStore {
  T* first;  // the lane's pair at depth 0, the warp's first row
  I depth_step, row_step;
  unsigned rows = 0;  // bit r: row r of the warp's four is inside the output (and the column and channels are)
  __device__ __forceinline__ TcStore(const DwArgs& a, const TileItem& t, std::int64_t chunk_c0, int row0) {
    const int lane = threadIdx.x, oh = t.oh0 + row0, ow = t.ow0 + lane / 4;
    const std::int64_t c = chunk_c0 + 2 * (lane % 4);
    const bool col_in = ow < a.out[2] && c < a.channels;
#pragma unroll
    for (int r = 0; r < 4; ++r) rows |= unsigned(col_in && oh + r < a.out[1]) << r;
    first = static_cast<T*>(a.y_out) + I(t.n) * I(a.ys[0]) + I(rows ? oh : 0) * I(a.ys[2]) +
            I(rows ? ow : 0) * I(a.ys[3]) + I(rows ? c : 0);
    depth_step = I(a.ys[1]);
    row_step = I(a.ys[2]);
  }
  __device__ __forceinline__ void put(int od, const float (&acc)[2][4]) const {
    T* p = first + I(od) * depth_step;
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const float lo = acc[r / 2][r % 2 * 2], hi = acc[r / 2][r % 2 * 2 + 1];
      unsigned bits;
      if constexpr (std::is_same_v<T, __nv_bfloat16>) {
        const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        bits = *reinterpret_cast<const unsigned*>(&v);
      } else {
        const __half2 v = __floats2half2_rn(lo, hi);
        bits = *reinterpret_cast<const unsigned*>(&v);
      }
      if (rows >> r & 1u) *reinterpret_cast<unsigned*>(p + I(r) * row_step) = bits;
    }
  }
};

template <class T, class I>
using TcStager = SliceStager<T, I, tile::kInRows, tile::kDataInCols, true>;

// True when a chunk this thread staged into `buf` holds an inf or a NaN
// (exponent bits all ones: |bits| >= 0x7f80 for bfloat16, 0x7c00 for
// float16; adding the difference to 0x8000 carries into the half's sign bit).
template <class T, class I>
__device__ __forceinline__ bool staged_nonfinite(const TcStager<T, I>& stager, const T* buf) {
  constexpr unsigned kCarry = std::is_same_v<T, __nv_bfloat16> ? 0x00800080u : 0x04000400u;
  unsigned seen = 0;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
  for (int i = 0; i < TcStager<T, I>::kIters; ++i) {
    if (i + 1 < TcStager<T, I>::kIters || i * cuda_plan::kThreadsPerBlock + tid < TcStager<T, I>::kChunks) {
      const uint4 q = reinterpret_cast<const uint4*>(buf)[stager.slot(i)];
      seen |= ((q.x & 0x7fff7fffu) + kCarry) | ((q.y & 0x7fff7fffu) + kCarry) | ((q.z & 0x7fff7fffu) + kCarry) |
              ((q.w & 0x7fff7fffu) + kCarry);
    }
  }
  return (seen & 0x80008000u) != 0;
}

// One slice step (as data_step: slice s in buffer s % Stages, one barrier,
// the slice's rows feed output depths id + pad - kd into the rotating
// accumulators, then depth id + pad - 2 is stored). False, with nothing
// computed, when some thread staged a non-finite input into slice s.
// x4 / x2: the lane's ldmatrix row offsets (bytes) in a slice for the
// warp's first row at kh = 0.
template <int P, int Stages, class T, class I>
__device__ __forceinline__ bool tc_step(const DwArgs& a, const TileItem& t, int s, int steps, T* bufs,
                                        const TcStager<T, I>& stager, const TcStore<T, I>& out, const TcWeights& w,
                                        unsigned x4, unsigned x2, float (&acc)[3][2][4]) {
  if (s >= steps) return true;
  const int id = t.od0 - a.pad[0] + s;
  copies_wait<Stages - 2>();  // this thread's copies of slice s have landed
  const T* buf = bufs + s % Stages * tile::kDataSlice;
  if (__syncthreads_or(staged_nonfinite(stager, buf))) return false;
  if (s + Stages - 1 < steps) stager.stage(bufs + (s + Stages - 1) % Stages * tile::kDataSlice, id + Stages - 1);
  copies_commit();
  // Every slot takes its products, also those of depths outside the item
  // (never stored; each slot is cleared when its depth completes): no
  // predicated mma. The step's A fragments are all loaded first (their
  // latency overlaps), then the k16 products and the k8 ones, so no mma
  // waits on the one issued just before it.
  if (id >= 0 && id < a.in[0]) {  // else padding: no products
    const unsigned base = static_cast<unsigned>(__cvta_generic_to_shared(buf));
    unsigned a01[3][2][4], a2[3][2][2];
#pragma unroll
    for (int kh = 0; kh < 3; ++kh)
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        ldmatrix_x4(a01[kh][mt], base + x4 + (2 * mt + kh) * tc::kRowBytes);
        ldmatrix_x2(a2[kh][mt], base + x2 + (2 * mt + kh) * tc::kRowBytes);
      }
#pragma unroll
    for (int kh = 0; kh < 3; ++kh) {
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int kd = 0; kd < 3; ++kd)
          mma_k16<T>(acc[(P - kd + 3) % 3][mt], a01[kh][mt], w.k16[kd * 3 + kh][0], w.k16[kd * 3 + kh][1]);
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int kd = 0; kd < 3; ++kd) mma_k8<T>(acc[(P - kd + 3) % 3][mt], a2[kh][mt], w.k8[kd * 3 + kh]);
    }
  }
  float(&done)[2][4] = acc[(P + 1) % 3];
  const int od = id + a.pad[0] - 2;
  if (od >= t.od0 && od < t.od1) out.put(od, done);
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int j = 0; j < 4; ++j) done[mt][j] = 0.f;
  return true;
}

// The FFMA march of one item, not inlined into the tensor-core kernel (the
// rare fallback keeps its own register allocation out of the main loop's).
template <class T, class I, int Stages>
__device__ __forceinline__ void data_tiled_item_fallback(const DwArgs& a, const TileItem& t, unsigned char* smem) {
  data_tiled_item<T, I, Stages>(a, t, smem);
}

// Forward / input gradient, 3x3x3 at stride 1, 16-bit storage: grid and
// dynamic shared memory as dw_data_tiled's (the fallback uses all of it;
// the tensor-core march only the slices).
template <class T, class I, int Stages, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_data_tiled_mma(DwArgs a, int d_seg, std::int64_t items) {
  static_assert(sizeof(T) == 2 && Stages >= 3, "16-bit storage; two slices in flight beside the one read");
  extern __shared__ __align__(16) unsigned char smem[];
  T* bufs = reinterpret_cast<T*>(smem);
  if (blockIdx.x >= items) return;  // an empty problem still launches one block
  const TileItem t = tile_item<tile::kDataCols>(a, blockIdx.x, d_seg);
  const int lane = threadIdx.x, chunk = threadIdx.y % tc::kChunks, row0 = threadIdx.y / tc::kChunks * 4;
  const std::int64_t c0 = std::int64_t(blockIdx.y) * tile::kLanes, chunk_c0 = c0 + chunk * tc::kChunkChannels;
  const TcWeights w = tc_weights<T, I>(a, chunk_c0);
  const TcStager<T, I> stager(a, static_cast<const T*>(a.x) + I(t.n) * I(a.xs[0]), t.oh0 - a.pad[1],
                              t.ow0 - a.pad[2], c0);
  const TcStore<T, I> out(a, t, chunk_c0, row0);
  // ldmatrix rows: lanes 8j..8j+7 address matrix j's rows (output column
  // lane % 8). x4: matrix j = output row j % 2 of the tile, kw = j / 2;
  // x2 (lanes 0-15 read): output row j % 2, kw = 2. A position's chunk
  // `chunk` sits in slot chunk ^ (col / 2 % 4) (TcStager's swizzle).
  const auto offset = [&](int row, int col) {
    return unsigned(((row * tile::kDataInCols + col) * tc::kChunks + (chunk ^ (col / 2 % 4))) * 16);
  };
  const int j = lane / 8;
  const unsigned x4 = offset(row0 + j % 2, lane % 8 + j / 2), x2 = offset(row0 + j % 2, lane % 8 + 2);
  float acc[3][2][4];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[i][mt][k] = 0.f;
  const int steps = t.od1 - t.od0 + 2;
#pragma unroll
  for (int q = 0; q < Stages - 1; ++q) {
    if (q < steps) stager.stage(bufs + q * tile::kDataSlice, t.od0 - a.pad[0] + q);
    copies_commit();
  }
  for (int s = 0; s < steps; s += 3) {
    if (!tc_step<0, Stages>(a, t, s, steps, bufs, stager, out, w, x4, x2, acc) ||
        !tc_step<1, Stages>(a, t, s + 1, steps, bufs, stager, out, w, x4, x2, acc) ||
        !tc_step<2, Stages>(a, t, s + 2, steps, bufs, stager, out, w, x4, x2, acc)) {
      copies_wait<0>();
      __syncthreads();  // every thread is done with the slices before the fallback restages them
      data_tiled_item_fallback<T, I, Stages>(a, t, smem);
      return;
    }
  }
  copies_wait<0>();  // nothing left in flight at exit
}

}  // namespace
}  // namespace volconv::cuda
