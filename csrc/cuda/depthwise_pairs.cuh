// The 16-bit forward / input gradient of the tiled case (3x3x3, stride 1)
// with two adjacent channels a lane: a block owns 64 channels of a tile of
// kTileRows x kDataTileCols outputs, so every position it reads or writes is
// 128 contiguous bytes (a whole cache line; 32 channels of 16-bit were half
// lines, which the H200's memory served at a lower rate), and each 32-bit
// shared-memory read brings a lane both of its channels. The input slices
// arrive by bulk tensor copies (tma.cuh), which leave the threads no staging
// work and no staging registers, so the 48 accumulators of two channels fit,
// and no block barrier a step: the last warp done with a slice queues the
// copy that refills its buffer, so warps wait only for bytes.
// Each output's sum runs in the same order as dw_data_tiled's (slices in
// order, kh, then the three kw of a row in one fused chain), so the two
// kernels' results are bit for bit the same.
// Included by depthwise_kernels.cuh after depthwise_tiled.cuh.
#pragma once

namespace volconv::cuda {
namespace {

namespace pairs {
constexpr int kLanes = 32, kChannels = cuda_plan::kPairChannels;
static_assert(kChannels == 2 * kLanes && cuda_plan::kTileChannels == kLanes, "two channels a lane");
constexpr int kRows = tile::kRows, kCols = tile::kDataCols, kInCols = tile::kDataInCols;
constexpr int kSlice = tile::kInRows * kInCols * kChannels;  // 16-bit elements of a staged slice
// A lane's weights: [kh][kd][channel][4] (three taps and a zero), one
// 16-byte read per (kh, kd, channel); 76 floats a lane (72 used) keep each
// quarter warp's 16-byte reads on distinct banks.
constexpr int kWeightSlots = cuda_plan::kPairWeightSlots, kWeightStride = cuda_plan::kPairWeightStride;
static_assert(kWeightSlots == 3 * 3 * 2 * 4 && kWeightStride % 4 == 0 && kWeightStride >= kWeightSlots, "the slots");
}  // namespace pairs

// One channel of a lane's 32-bit pair as float32 (the low half is the lower channel).
template <class T, int Ch>
__device__ __forceinline__ float pair_half(unsigned v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return __uint_as_float(Ch == 0 ? v << 16 : v & 0xffff0000u);
  else return __half2float(__ushort_as_half(static_cast<unsigned short>(Ch == 0 ? v & 0xffffu : v >> 16)));
}
template <class T>
__device__ __forceinline__ unsigned pack_pair(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&p);
  } else {
    const __half2 p = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const unsigned*>(&p);
  }
}

// The pairs kernel's outputs: a lane's two channels, one 32-bit pair a
// column, into the warp's patch; out as PatchChunks.
template <class T, class I>
struct PairStore {
  unsigned* patch;  // the warp's [kCols][kLanes] pairs
  PatchChunks<T, I, pairs::kChannels> out;
  __device__ __forceinline__ PairStore(const DwArgs& a, const TileItem& t, std::int64_t c0, unsigned* patches)
      : patch(patches + threadIdx.y * pairs::kCols * pairs::kLanes), out(a, t, c0) {}
  __device__ __forceinline__ void put(int od, const float (&v)[2][pairs::kCols]) const {
#pragma unroll
    for (int j = 0; j < pairs::kCols; ++j) patch[j * pairs::kLanes + threadIdx.x] = pack_pair<T>(v[0][j], v[1][j]);
    out.flush(patch, od);
  }
};

// The slices of the pairs kernel (slice q of the march in buffer q %
// Stages): one bulk tensor copy (a box of 64 channels) a slice, whose bytes
// complete a phase of the buffer's mbarrier full[q % Stages]. Thread 0
// queues the first Stages; wait(s) comes before step s reads its slice;
// release(s) after the warp's last read of it: the warps count themselves
// done on the buffer's counter, and the last one queues slice s + Stages
// there. So no warp waits for the others at a block barrier (on the H200,
// large shape: barrier stalls 0.50 -> 0.13 an issued instruction; bfloat16
// input gradient 0.1371 -> 0.1348 ms, float16 forward 0.1347 -> 0.1327). Slice s is queued only once every warp is done with slice
// s - Stages, so while a warp waits for slice s, slice s + Stages cannot
// land: the buffer's mbarrier is at most at the phase the warp waits for,
// and the parity wait stays unambiguous.
template <class T, int Stages>
struct PairSlices {
  const CUtensorMap* map;
  T* bufs;
  std::uint64_t* full;
  unsigned* done;  // per buffer: warps done with its slices so far
  int c0, w0, h0, n;
  __device__ __forceinline__ static bool issuer() { return threadIdx.x == 0 && threadIdx.y == 0; }
  __device__ __forceinline__ void issue(int q, int id) const {
    std::uint64_t* bar = full + q % Stages;
    mbarrier_expect_bytes(bar, pairs::kSlice * unsigned(sizeof(T)));
    tensor_copy_5d(bufs + q % Stages * pairs::kSlice, *map, bar, c0, w0, h0, id, n);
  }
  __device__ __forceinline__ void start(int steps, int id0) const {
    if (!issuer()) return;
#pragma unroll
    for (int q = 0; q < Stages; ++q)
      if (q < steps) issue(q, id0 + q);
  }
  __device__ __forceinline__ void wait(int s) const { mbarrier_wait(full + s % Stages, unsigned(s / Stages) & 1u); }
  // id: slice s's input depth. The fences order every lane's reads of the
  // buffer (through __syncwarp and the counter) before the copy that the
  // last warp then issues into it.
  __device__ __forceinline__ void release(int s, int steps, int id) const {
    __syncwarp();
    if (threadIdx.x == 0) {
      __threadfence_block();
      const unsigned before = atomicAdd(done + s % Stages, 1u);
      __threadfence_block();
      const bool last = before == unsigned(tile::kRows * (s / Stages + 1) - 1);
      if (last && s + Stages < steps) issue(s + Stages, id + Stages);
    }
  }
};

// One channel's products of a staged row: the three output depths that read
// the slice (rotating slots, phase P).
template <int P, int Ch, class T>
__device__ __forceinline__ void pair_row(const unsigned (&xp)[pairs::kInCols], const float* w, int kh, unsigned kds,
                                         float (&acc)[3][2][pairs::kCols]) {
  float xr[pairs::kInCols];
#pragma unroll
  for (int j = 0; j < pairs::kInCols; ++j) {
    xr[j] = pair_half<T, Ch>(xp[j]);
    // Pinned here: otherwise the compiler converts again inside each kd's
    // branch below (three conversions an element instead of one).
    asm volatile("" : "+f"(xr[j]));
  }
#pragma unroll
  for (int kd = 0; kd < 3; ++kd) {
    if (!(kds >> kd & 1u)) continue;
    const float4 q = reinterpret_cast<const float4*>(w)[(kh * 3 + kd) * 2 + Ch];
    float(&out)[pairs::kCols] = acc[(P - kd + 3) % 3][Ch];
#pragma unroll
    for (int j = 0; j < pairs::kCols; ++j) out[j] = fmaf(xr[j + 2], q.z, fmaf(xr[j + 1], q.y, fmaf(xr[j], q.x, out[j])));
  }
}

template <int P, int Stages, class T, class I>
__device__ __forceinline__ void pair_step(const DwArgs& a, const TileItem& t, int s, int steps, const T* bufs,
                                          const PairSlices<T, Stages>& slices, const PairStore<T, I>& out_row,
                                          const float* w, float (&acc)[3][2][pairs::kCols]) {
  if (s >= steps) return;
  const int id = t.od0 - a.pad[0] + s;
  slices.wait(s);
  // kd's bit: output depth id + pad - kd is one of the item's (none for a padding slice).
  unsigned kds = 0;
  if (id >= 0 && id < a.in[0]) {
#pragma unroll
    for (int kd = 0; kd < 3; ++kd) {
      const int od = id + a.pad[0] - kd;
      kds |= unsigned(od >= t.od0 && od < t.od1) << kd;
    }
  }
  const unsigned* buf = reinterpret_cast<const unsigned*>(bufs + s % Stages * pairs::kSlice);
  // Slot P takes its first products now (kd = 0). Zeroed here rather than
  // after the previous step's store: there the compiler copied the finished
  // sums to other registers first (~25 more instructions a step).
#pragma unroll
  for (int ch = 0; ch < 2; ++ch)
#pragma unroll
    for (int j = 0; j < pairs::kCols; ++j) acc[P][ch][j] = 0.f;
#pragma unroll
  for (int kh = 0; kh < 3; ++kh) {
    unsigned xp[pairs::kInCols];
#pragma unroll
    for (int j = 0; j < pairs::kInCols; ++j)
      xp[j] = buf[((threadIdx.y + kh) * pairs::kInCols + j) * pairs::kLanes + threadIdx.x];
    pair_row<P, 0, T>(xp, w, kh, kds, acc);
    pair_row<P, 1, T>(xp, w, kh, kds, acc);
  }
  slices.release(s, steps, id);
  const int od = id + a.pad[0] - 2;
  if (od >= t.od0 && od < t.od1) out_row.put(od, acc[(P + 1) % 3]);
}

// Block (spatial item, 64 channels); grid.x = items. Dynamic shared memory:
// Stages slices, the weights [kLanes][kWeightStride], the warps' patches,
// then the slices' mbarriers and counters (cuda_plan::pairs_shared_bytes).
template <class T, class I, int Stages, int MinBlocks>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock, MinBlocks)
    dw_data_pairs(DwArgs a, int d_seg, std::int64_t items, const __grid_constant__ CUtensorMap x_map) {
  allow_dependent_launch();  // the fix-up grid may queue now (depthwise_nonfinite.cuh)
  static_assert(sizeof(T) == 2, "two 16-bit channels a lane");
  static_assert(Stages >= 2, "a slice in flight beside the one read");
  extern __shared__ __align__(128) unsigned char smem[];
  T* bufs = reinterpret_cast<T*>(smem);
  if (blockIdx.x >= items) return;  // an empty problem still launches one block
  const TileItem t = tile_item<tile::kDataCols>(a, blockIdx.x, d_seg);
  const std::int64_t c0 = std::int64_t(blockIdx.y) * pairs::kChannels;
  float* ws = reinterpret_cast<float*>(smem + Stages * pairs::kSlice * sizeof(T));
  // The weights, flipped along every axis when asked.
  for (int k = threadIdx.y; k < pairs::kWeightSlots; k += tile::kRows) {
    const int kw = k % 4, ch = k / 4 % 2, kd = k / 8 % 3, kh = k / 24;  // slot k's tap (kw 3: padding)
    const std::int64_t c = c0 + 2 * threadIdx.x + ch;
    ws[threadIdx.x * pairs::kWeightStride + k] = kw < 3 ? tap_weight<T, I>(a, c, kd, kh, kw) : 0.f;
  }
  unsigned* patches = reinterpret_cast<unsigned*>(ws + pairs::kLanes * pairs::kWeightStride);
  std::uint64_t* full = reinterpret_cast<std::uint64_t*>(patches + tile::kRows * pairs::kCols * pairs::kLanes);
  unsigned* done = reinterpret_cast<unsigned*>(full + Stages);
  if (PairSlices<T, Stages>::issuer()) {
    for (int b = 0; b < Stages; ++b) {
      mbarrier_init(full + b, 1);
      done[b] = 0;
    }
    mbarrier_init_fence();
  }
  __syncthreads();  // the weights and the barriers are set up
  const PairSlices<T, Stages> slices{&x_map, bufs, full, done, int(c0), t.ow0 - a.pad[2], t.oh0 - a.pad[1], int(t.n)};
  const PairStore<T, I> out_row(a, t, c0, patches);
  const float* w = ws + threadIdx.x * pairs::kWeightStride;
  float acc[3][2][pairs::kCols];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int ch = 0; ch < 2; ++ch)
#pragma unroll
      for (int j = 0; j < pairs::kCols; ++j) acc[i][ch][j] = 0.f;
  const int steps = t.od1 - t.od0 + 2;
  slices.start(steps, t.od0 - a.pad[0]);
  for (int s = 0; s < steps; s += 3) {
    pair_step<0, Stages>(a, t, s, steps, bufs, slices, out_row, w, acc);
    pair_step<1, Stages>(a, t, s + 1, steps, bufs, slices, out_row, w, acc);
    pair_step<2, Stages>(a, t, s + 2, steps, bufs, slices, out_row, w, acc);
  }
}

}  // namespace
}  // namespace volconv::cuda
