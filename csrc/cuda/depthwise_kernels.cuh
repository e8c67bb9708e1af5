// Depthwise 3D kernels (channel multiplier 1), NDHWC: channels across the
// lanes of a warp so each load is one coalesced row, fp32 accumulation for
// every storage type. Offsets are computed in I (int32 unless the planner
// saw a view reach 2^31), spatial coordinates in int. Included once per
// storage type (depthwise_kernels_{f32,f16,bf16}.cu), so the three compile
// in parallel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#pragma once

#include "depthwise_kernels.h"
#include "depthwise_nonfinite.cuh"
#include "elements.cuh"

namespace volconv::cuda {
namespace {

// One thread: WT consecutive outputs along W of one channel.
template <class T, int WT, class I, bool Dilated>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock) dw_data(DwArgs a) {
  const std::int64_t c = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  const std::int64_t item = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  const int w_tiles = (a.out[2] + WT - 1) / WT;
  if (c >= a.channels || item >= a.batch * a.out[0] * a.out[1] * std::int64_t(w_tiles)) return;
  const int ow0 = int(item % w_tiles) * WT;
  std::int64_t r = item / w_tiles;
  const int oh = int(r % a.out[1]);
  r /= a.out[1];
  const int od = int(r % a.out[0]);
  const std::int64_t n = r / a.out[0];

  const T* x = static_cast<const T*>(a.x) + I(n) * I(a.xs[0]) + I(c) * I(a.xs[4]);
  const T* w = static_cast<const T*>(a.w) + I(c) * I(a.ws[0]);
  const int taps = a.kernel[0] * a.kernel[1] * a.kernel[2];
  float acc[WT];
#pragma unroll
  for (int t = 0; t < WT; ++t) acc[t] = 0.f;
  // A tap outside the input is left out, or multiplies a zero (0 * NaN =
  // NaN) when the problem's rule says so (depthwise_nonfinite.cuh).
  for (int kd = 0; kd < a.kernel[0]; ++kd) {
    const int id = source<Dilated>(od, kd, a.stride[0], a.pad[0], a.kdil[0], a.idil[0], a.in[0]);
    if (id < 0 && !a.multiply_padding) continue;
    for (int kh = 0; kh < a.kernel[1]; ++kh) {
      const int ih = source<Dilated>(oh, kh, a.stride[1], a.pad[1], a.kdil[1], a.idil[1], a.in[1]);
      if (ih < 0 && !a.multiply_padding) continue;
      const T* row = id >= 0 && ih >= 0 ? x + I(id) * I(a.xs[1]) + I(ih) * I(a.xs[2]) : nullptr;
      for (int kw = 0; kw < a.kernel[2]; ++kw) {
        int tap = (kd * a.kernel[1] + kh) * a.kernel[2] + kw;
        if (a.flip) tap = taps - 1 - tap;  // flipping all three axes reverses the flat tap index
        const int td = tap / (a.kernel[1] * a.kernel[2]), th = (tap / a.kernel[2]) % a.kernel[1],
                  tw = tap % a.kernel[2];
        const float wv = load(w + I(td) * I(a.ws[1]) + I(th) * I(a.ws[2]) + I(tw) * I(a.ws[3]));
#pragma unroll
        for (int t = 0; t < WT; ++t) {
          const int iw = source<Dilated>(ow0 + t, kw, a.stride[2], a.pad[2], a.kdil[2], a.idil[2], a.in[2]);
          if (ow0 + t >= a.out[2]) continue;
          if (row != nullptr && iw >= 0) acc[t] += load(row + I(iw) * I(a.xs[3])) * wv;
          else if (a.multiply_padding) acc[t] += 0.f * wv;
        }
      }
    }
  }
  T* y = static_cast<T*>(a.y_out) + I(n) * I(a.ys[0]) + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) +
         I(c) * I(a.ys[4]);
#pragma unroll
  for (int t = 0; t < WT; ++t)
    if (ow0 + t < a.out[2]) store(y + I(ow0 + t) * I(a.ys[3]), acc[t]);
}

// V consecutive channels as one load / store (the planner checked that the
// view is channel-contiguous and aligned).
template <class T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <int V, class T>
__device__ __forceinline__ void load_channels(const T* p, float (&out)[V]) {
  const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int v = 0; v < V; ++v) out[v] = to_float(pk.v[v]);
}

template <int V, class T>
__device__ __forceinline__ void store_channels(T* p, const float (&in)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int v = 0; v < V; ++v) store(&pk.v[v], in[v]);
  *reinterpret_cast<Pack<T, V>*>(p) = pk;
}

// The WT + 2 inputs of one row from input column iw0 on, V channels each
// (zeros outside the input).
template <int WT, int V, class T, class I>
__device__ __forceinline__ void load_row(const T* row, int iw0, int in_w, I step, float (&xr)[WT + 2][V]) {
#pragma unroll
  for (int j = 0; j < WT + 2; ++j) {
    const int iw = iw0 + j;
    if (iw >= 0 && iw < in_w) {
      load_channels<V>(row + I(iw) * step, xr[j]);
    } else {
#pragma unroll
      for (int v = 0; v < V; ++v) xr[j][v] = 0.f;
    }
  }
}

// row3 forward / input gradient: a kernel 3 wide along W at stride 1. Each
// (kd, kh) row's WT + 2 inputs are loaded once into registers and each feeds
// up to three taps; flipping all axes reverses each axis of the weight.
template <class T, int WT, class I, int V>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock) dw_data_row3(DwArgs a) {
  allow_dependent_launch();  // the fix-up grid may queue now (depthwise_nonfinite.cuh)
  const std::int64_t c = (std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  const std::int64_t item = std::int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  const int w_tiles = (a.out[2] + WT - 1) / WT;
  if (c >= a.channels || item >= a.batch * a.out[0] * a.out[1] * std::int64_t(w_tiles)) return;
  const int ow0 = int(item % w_tiles) * WT;
  std::int64_t r = item / w_tiles;
  const int oh = int(r % a.out[1]);
  r /= a.out[1];
  const int od = int(r % a.out[0]);
  const std::int64_t n = r / a.out[0];

  const T* x = static_cast<const T*>(a.x) + I(n) * I(a.xs[0]) + I(c) * I(a.xs[4]);
  const T* w = static_cast<const T*>(a.w) + I(c) * I(a.ws[0]);
  float acc[WT][V];
#pragma unroll
  for (int t = 0; t < WT; ++t)
#pragma unroll
    for (int v = 0; v < V; ++v) acc[t][v] = 0.f;
  for (int kd = 0; kd < a.kernel[0]; ++kd) {
    const int id = source<false>(od, kd, a.stride[0], a.pad[0], a.kdil[0], 1, a.in[0]);
    if (id < 0) continue;
    for (int kh = 0; kh < a.kernel[1]; ++kh) {
      const int ih = source<false>(oh, kh, a.stride[1], a.pad[1], a.kdil[1], 1, a.in[1]);
      if (ih < 0) continue;
      float xr[WT + 2][V];
      load_row<WT, V>(x + I(id) * I(a.xs[1]) + I(ih) * I(a.xs[2]), ow0 - a.pad[2], a.in[2], I(a.xs[3]), xr);
      const int wd = a.flip ? a.kernel[0] - 1 - kd : kd, wh = a.flip ? a.kernel[1] - 1 - kh : kh;
      float w0[V], w1[V], w2[V];
#pragma unroll
      for (int v = 0; v < V; ++v) {
        const T* wp = w + I(v) * I(a.ws[0]) + I(wd) * I(a.ws[1]) + I(wh) * I(a.ws[2]);
        w0[v] = load(wp);
        w1[v] = load(wp + I(a.ws[3]));
        w2[v] = load(wp + 2 * I(a.ws[3]));
        if (a.flip) {
          const float t = w0[v];
          w0[v] = w2[v];
          w2[v] = t;
        }
      }
#pragma unroll
      for (int t = 0; t < WT; ++t)
#pragma unroll
        for (int v = 0; v < V; ++v) acc[t][v] += xr[t][v] * w0[v] + xr[t + 1][v] * w1[v] + xr[t + 2][v] * w2[v];
    }
  }
  T* y = static_cast<T*>(a.y_out) + I(n) * I(a.ys[0]) + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) +
         I(c) * I(a.ys[4]);
#pragma unroll
  for (int t = 0; t < WT; ++t)
    if (ow0 + t < a.out[2]) store_channels<V>(y + I(ow0 + t) * I(a.ys[3]), acc[t]);
}

// The rows of a block hold partial sums of the same (tap, channel) slice:
// added in row order (fixed) into partials[chunk][t0 + i][c + v].
template <int N, int V>
__device__ __forceinline__ void write_partials(const float (&acc)[N][V], int count, int t0, int taps,
                                               std::int64_t c, std::int64_t channels, float* partials, float* rows) {
  const int lane = threadIdx.y * blockDim.x + threadIdx.x;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (i < count) {
#pragma unroll
      for (int v = 0; v < V; ++v) {
        rows[lane] = acc[i][v];
        __syncthreads();
        if (threadIdx.y == 0 && c < channels) {
          float s = 0.f;
          for (int row = 0; row < int(blockDim.y); ++row) s += rows[row * blockDim.x + threadIdx.x];
          partials[(std::int64_t(blockIdx.x) * taps + t0 + i) * channels + c + v] = s;
        }
        __syncthreads();
      }
    }
  }
}

// row3 weight gradient (kernel 3x3x3, W at stride 1): a thread sums whole
// W lines of its chunk, WT outputs at a time; each input row segment is
// loaded once for the three taps along W, and the 27 sums stay in registers.
template <class T, int WT, class I, int V>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock)
    dw_wgrad_row3(DwArgs a, float* partials, std::int64_t lines_per_chunk) {
  __shared__ float rows[cuda_plan::kThreadsPerBlock];
  const std::int64_t c = (std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x) * V;
  const std::int64_t lines = a.batch * a.out[0] * a.out[1];
  const std::int64_t begin = std::int64_t(blockIdx.x) * lines_per_chunk;
  const std::int64_t end = min(begin + lines_per_chunk, lines);
  float acc[27][V];
#pragma unroll
  for (int i = 0; i < 27; ++i)
#pragma unroll
    for (int v = 0; v < V; ++v) acc[i][v] = 0.f;
  if (c < a.channels) {
    const T* x = static_cast<const T*>(a.x) + I(c) * I(a.xs[4]);
    for (std::int64_t line = begin + threadIdx.y; line < end; line += blockDim.y) {
      const int oh = int(line % a.out[1]);
      const std::int64_t r = line / a.out[1];
      const int od = int(r % a.out[0]);
      const std::int64_t n = r / a.out[0];
      const T* xn = x + I(n) * I(a.xs[0]);
      const T* y = static_cast<const T*>(a.y_in) + I(n) * I(a.ys[0]) + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) +
                   I(c) * I(a.ys[4]);
      int id[3], ih[3];
#pragma unroll
      for (int k = 0; k < 3; ++k) {
        id[k] = source<false>(od, k, a.stride[0], a.pad[0], a.kdil[0], 1, a.in[0]);
        ih[k] = source<false>(oh, k, a.stride[1], a.pad[1], a.kdil[1], 1, a.in[1]);
      }
      for (int ow0 = 0; ow0 < a.out[2]; ow0 += WT) {
        float g[WT][V];
#pragma unroll
        for (int t = 0; t < WT; ++t) {
          if (ow0 + t < a.out[2]) {
            load_channels<V>(y + I(ow0 + t) * I(a.ys[3]), g[t]);
          } else {
#pragma unroll
            for (int v = 0; v < V; ++v) g[t][v] = 0.f;
          }
        }
#pragma unroll
        for (int kd = 0; kd < 3; ++kd) {
#pragma unroll
          for (int kh = 0; kh < 3; ++kh) {
            if (id[kd] < 0 || ih[kh] < 0) {
              // A row outside the input along D or H: zeros, which the rule
              // may multiply (conv3d's weight gradient: 0 * NaN = NaN).
              // Only a non-finite gradient value makes those products other
              // than zero: NaN (0 * inf, 0 * NaN), and so the taps' sums.
              if (a.multiply_padding) {
#pragma unroll
                for (int v = 0; v < V; ++v) {
                  bool finite = true;
#pragma unroll
                  for (int t = 0; t < WT; ++t) finite &= isfinite(g[t][v]) != 0;
                  if (!finite)
#pragma unroll
                    for (int kw = 0; kw < 3; ++kw) acc[(kd * 3 + kh) * 3 + kw][v] = __int_as_float(0x7fffffff);
                }
              }
              continue;
            }
            float xr[WT + 2][V];
            load_row<WT, V>(xn + I(id[kd]) * I(a.xs[1]) + I(ih[kh]) * I(a.xs[2]), ow0 - a.pad[2], a.in[2],
                            I(a.xs[3]), xr);
#pragma unroll
            for (int kw = 0; kw < 3; ++kw)
#pragma unroll
              for (int v = 0; v < V; ++v) {
                float s = 0.f;
#pragma unroll
                for (int t = 0; t < WT; ++t) s += g[t][v] * xr[t + kw][v];
                acc[(kd * 3 + kh) * 3 + kw][v] += s;
              }
          }
        }
      }
    }
  }
  write_partials(acc, 27, 0, 27, c, a.channels, partials, rows);
}

// Weight gradient, pass 1: block (chunk, channel slice, tap slice) sums its
// chunk of output positions; the rows of the block are then added in row
// order (fixed) into partials[chunk][tap][c].
template <class T, class I, bool Dilated>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock)
    dw_wgrad_partial(DwArgs a, float* partials, std::int64_t per_chunk, int taps_per_pass) {
  __shared__ float rows[cuda_plan::kThreadsPerBlock];
  const std::int64_t c = std::int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  const int taps = a.kernel[0] * a.kernel[1] * a.kernel[2];
  const int t0 = int(blockIdx.z) * taps_per_pass;
  const int nt = min(taps_per_pass, taps - t0);
  const std::int64_t positions = a.batch * a.out[0] * a.out[1] * a.out[2];
  const std::int64_t begin = std::int64_t(blockIdx.x) * per_chunk;
  const std::int64_t end = min(begin + per_chunk, positions);
  float acc[cuda_plan::kMaxTapsPerPass][1];
#pragma unroll
  for (int i = 0; i < cuda_plan::kMaxTapsPerPass; ++i) acc[i][0] = 0.f;

  if (c < a.channels && begin + threadIdx.y < end) {
    std::int64_t p = begin + threadIdx.y;
    int ow = int(p % a.out[2]);
    std::int64_t r = p / a.out[2];
    int oh = int(r % a.out[1]);
    r /= a.out[1];
    int od = int(r % a.out[0]);
    std::int64_t n = r / a.out[0];
    const T* x = static_cast<const T*>(a.x) + I(c) * I(a.xs[4]);
    const T* y = static_cast<const T*>(a.y_in) + I(c) * I(a.ys[4]);
    for (; p < end; p += blockDim.y) {
      const float g = load(y + I(n) * I(a.ys[0]) + I(od) * I(a.ys[1]) + I(oh) * I(a.ys[2]) + I(ow) * I(a.ys[3]));
      const T* xn = x + I(n) * I(a.xs[0]);
      int kd = t0 / (a.kernel[1] * a.kernel[2]), kh = (t0 / a.kernel[2]) % a.kernel[1], kw = t0 % a.kernel[2];
#pragma unroll
      for (int i = 0; i < cuda_plan::kMaxTapsPerPass; ++i) {
        if (i < nt) {
          const int id = source<Dilated>(od, kd, a.stride[0], a.pad[0], a.kdil[0], a.idil[0], a.in[0]);
          const int ih = source<Dilated>(oh, kh, a.stride[1], a.pad[1], a.kdil[1], a.idil[1], a.in[1]);
          const int iw = source<Dilated>(ow, kw, a.stride[2], a.pad[2], a.kdil[2], a.idil[2], a.in[2]);
          if (id >= 0 && ih >= 0 && iw >= 0)
            acc[i][0] += load(xn + I(id) * I(a.xs[1]) + I(ih) * I(a.xs[2]) + I(iw) * I(a.xs[3])) * g;
          else if (a.multiply_padding)  // the rule: 0 * NaN = NaN (conv3d's weight gradient)
            acc[i][0] += 0.f * g;
          if (++kw == a.kernel[2]) {
            kw = 0;
            if (++kh == a.kernel[1]) kh = 0, ++kd;
          }
        }
      }
      // Next position of this thread: blockDim.y further along (ow, oh, od, n).
      ow += blockDim.y;
      while (ow >= a.out[2]) {
        ow -= a.out[2];
        if (++oh == a.out[1]) {
          oh = 0;
          if (++od == a.out[0]) od = 0, ++n;
        }
      }
    }
  }
  write_partials(acc, nt, t0, taps, c, a.channels, partials, rows);
}

// Weight gradient, pass 2: block (tap, 32 channels); row r of the block adds
// its fixed range of chunks in order (eight loads in flight at a time), then
// row 0 adds the rows' sums in row order: a fixed order, the same bits
// every run.
template <class T, class I>
__global__ void __launch_bounds__(cuda_plan::kThreadsPerBlock)
    dw_wgrad_reduce(DwArgs a, const float* partials, std::int64_t chunks) {
  __shared__ float sums[cuda_plan::kReduceGroups][32];
  const int taps = a.kernel[0] * a.kernel[1] * a.kernel[2];
  const std::int64_t channel_blocks = (a.channels + 31) / 32;
  const int t = int(blockIdx.x / channel_blocks);
  const std::int64_t c = std::int64_t(blockIdx.x % channel_blocks) * 32 + threadIdx.x;
  const std::int64_t per = (chunks + cuda_plan::kReduceGroups - 1) / cuda_plan::kReduceGroups;
  const std::int64_t k0 = threadIdx.y * per, k1 = min(k0 + per, chunks);
  float s = 0.f;
  if (c < a.channels) {
    const float* p = partials + std::int64_t(t) * a.channels + c;
    const std::int64_t step = std::int64_t(taps) * a.channels;  // one chunk
    std::int64_t k = k0;
    for (; k + 8 <= k1; k += 8) {
      float v[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = p[(k + i) * step];
#pragma unroll
      for (int i = 0; i < 8; ++i) s += v[i];
    }
    for (; k < k1; ++k) s += p[k * step];
  }
  sums[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= a.channels) return;
  float total = 0.f;
  for (int r = 0; r < cuda_plan::kReduceGroups; ++r) total += sums[r][threadIdx.x];
  const int tap = a.flip ? taps - 1 - t : t;
  const int td = tap / (a.kernel[1] * a.kernel[2]), th = (tap / a.kernel[2]) % a.kernel[1], tw = tap % a.kernel[2];
  store(static_cast<T*>(a.w_out) + I(c) * I(a.ws[0]) + I(td) * I(a.ws[1]) + I(th) * I(a.ws[2]) + I(tw) * I(a.ws[3]),
        total);
}

}  // namespace
}  // namespace volconv::cuda

#include "tma.cuh"
#include "depthwise_tiled.cuh"
#include "depthwise_pairs.cuh"

namespace volconv::cuda {
namespace {

dim3 grid_of(const cuda_plan::Launch& l) { return dim3(unsigned(l.grid[0]), unsigned(l.grid[1]), unsigned(l.grid[2])); }
dim3 block_of(const cuda_plan::Launch& l) { return dim3(unsigned(l.block[0]), unsigned(l.block[1]), unsigned(l.block[2])); }

// Above 48 KB of shared memory a kernel must say so (per device; a failure
// shows as the launch's error).
template <class Kernel>
void allow_shared(Kernel kernel, int bytes) {
  if (bytes > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

// The tiled weight gradient's register budget: 80 a thread (three blocks an
// SM: 27 sums, three gradient rows and an input row per thread; measured on
// the H200: four blocks spilled and ran 25% slower, two ran 10% slower).
constexpr int kWgradTiledMinBlocks = 3;

template <class T, class I>
void launch_data_tiled(const cuda_plan::DepthwisePlan& plan, const DwArgs& a, cudaStream_t s) {
  // 64-bit offsets need more registers: at most three blocks an SM.
  constexpr int blocks = sizeof(I) == 4 ? cuda_plan::kDataTileBlocks : std::min(cuda_plan::kDataTileBlocks, 3);
  const auto kernel = dw_data_tiled<T, I, cuda_plan::kTileStages, blocks>;
  allow_shared(kernel, plan.shared_bytes);
  kernel<<<grid_of(plan.main), block_of(plan.main), plan.shared_bytes, s>>>(a, plan.d_seg, plan.items);
}

// The pairs kernel, with the input as a tensor map whose boxes are its
// staged slices. Should the map be refused (the planner's chunk rule keeps
// the views inside the copy engine's rules, so it is not expected), the
// tiled kernel runs the problem instead, on its own grid.
template <class T, class I>
void launch_data_pairs(const cuda_plan::DepthwisePlan& plan, const DwArgs& a, cudaStream_t s) {
  CUtensorMap x_map{};
  const std::int64_t dims[5] = {a.batch, a.in[0], a.in[1], a.in[2], a.channels};
  if (!ndhwc_box_map<T>(x_map, a.x, dims, a.xs, pairs::kChannels, tile::kDataInCols, tile::kInRows)) {
    launch_data_tiled<T, I>(cuda_plan::tiled_instead_of_pairs(plan, a.channels), a, s);
    return;
  }
  const auto kernel = dw_data_pairs<T, I, cuda_plan::kTileStages, cuda_plan::kPairBlocks>;
  allow_shared(kernel, plan.shared_bytes);
  kernel<<<grid_of(plan.main), block_of(plan.main), plan.shared_bytes, s>>>(a, plan.d_seg, plan.items, x_map);
}

template <class T, class I>
void launch_wgrad_tiled(const cuda_plan::DepthwisePlan& plan, const DwArgs& a, float* partials, cudaStream_t s) {
  const auto kernel = dw_wgrad_tiled<T, I, cuda_plan::kTileGradStages, kWgradTiledMinBlocks>;
  allow_shared(kernel, plan.shared_bytes);
  kernel<<<grid_of(plan.main), block_of(plan.main), plan.shared_bytes, s>>>(a, partials, plan.d_seg, plan.items,
                                                                              plan.chunks);
}

// After the row3, tiled and pairs forward / input gradient (their march
// skips the padding along some axes and multiplies the zeros along others):
// the outputs of channels with a non-finite weight whose window leaves the
// input, by the rule (depthwise_nonfinite.cuh). Not launched when no window
// leaves the input (no padding). One block a 32 channels; a block whose
// weights are finite, nearly all, returns after reading them and waiting
// for the march.
template <class T, class I>
void launch_nonfinite_fix(const DwArgs& a, cudaStream_t s) {
  bool leaves = false;  // (these kernels' problems have input dilation 1)
  for (int i = 0; i < 3; ++i) leaves |= axis_reads_zeros(a.out[i], a.in[i], a.kernel[i], a.stride[i], a.pad[i], a.kdil[i], 1);
  if (!leaves || a.batch * a.out[0] * a.out[1] * std::int64_t(a.out[2]) == 0) return;
  // Launched as a programmatic dependent of the march (the backend needs
  // sm_90, streams.cu): it is scheduled beside the march's last blocks and
  // waits in the kernel, not in the stream.
  cudaLaunchAttribute dependent{};
  dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dependent.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned((a.channels + 31) / 32));
  config.blockDim = dim3(32, 8);
  config.stream = s;
  config.attrs = &dependent;
  config.numAttrs = 1;
  cudaLaunchKernelEx(&config, dw_data_nonfinite_fix<T, I>, a);  // an error stays for cudaGetLastError
}

template <class T, class I, bool Dilated>
void launch(const cuda_plan::DepthwisePlan& plan, const DwArgs& a, float* partials, cudaStream_t s) {
  if (plan.kernel == cuda_plan::DwKernel::pairs) {
    if constexpr (sizeof(T) == 2) launch_data_pairs<T, I>(plan, a, s);  // the planner picks it for 16-bit only
    launch_nonfinite_fix<T, I>(a, s);
    return;
  }
  if (plan.kernel == cuda_plan::DwKernel::tiled) {
    if (plan.op == detail::ConvOp::data) {
      launch_data_tiled<T, I>(plan, a, s);
      launch_nonfinite_fix<T, I>(a, s);
      return;
    }
    launch_wgrad_tiled<T, I>(plan, a, partials, s);
    dw_wgrad_reduce<T, I><<<grid_of(plan.reduce), block_of(plan.reduce), 0, s>>>(a, partials, plan.chunks);
    return;
  }
  if (plan.kernel == cuda_plan::DwKernel::row3) {
    if (plan.op == detail::ConvOp::data) {
      const auto kernel = plan.vec == 4 ? dw_data_row3<T, 8, I, 4>
                          : plan.vec == 2 ? dw_data_row3<T, 8, I, 2>
                                          : dw_data_row3<T, 8, I, 1>;
      kernel<<<grid_of(plan.main), block_of(plan.main), 0, s>>>(a);
      launch_nonfinite_fix<T, I>(a, s);
      return;
    }
    // Two channels per thread: four outputs at a time, so the 54 sums, the
    // gradients and the row stay in registers.
    const auto kernel = plan.vec == 2 ? dw_wgrad_row3<T, 4, I, 2> : dw_wgrad_row3<T, 8, I, 1>;
    kernel<<<grid_of(plan.main), block_of(plan.main), 0, s>>>(a, partials, plan.lines_per_chunk);
    dw_wgrad_reduce<T, I><<<grid_of(plan.reduce), block_of(plan.reduce), 0, s>>>(a, partials, plan.chunks);
    return;
  }
  if (plan.op == detail::ConvOp::data) {
    if (plan.w_tile == 4)
      dw_data<T, 4, I, Dilated><<<grid_of(plan.main), block_of(plan.main), 0, s>>>(a);
    else
      dw_data<T, 1, I, Dilated><<<grid_of(plan.main), block_of(plan.main), 0, s>>>(a);
    return;
  }
  dw_wgrad_partial<T, I, Dilated>
      <<<grid_of(plan.main), block_of(plan.main), 0, s>>>(a, partials, plan.positions_per_chunk, plan.taps_per_pass);
  dw_wgrad_reduce<T, I><<<grid_of(plan.reduce), block_of(plan.reduce), 0, s>>>(a, partials, plan.chunks);
}

template <class T>
void launch_typed(const cuda_plan::DepthwisePlan& plan, const DwArgs& a, float* partials, cudaStream_t s) {
  const bool dilated = a.idil[0] > 1 || a.idil[1] > 1 || a.idil[2] > 1;
  if (plan.index64)
    dilated ? launch<T, std::int64_t, true>(plan, a, partials, s) : launch<T, std::int64_t, false>(plan, a, partials, s);
  else
    dilated ? launch<T, std::int32_t, true>(plan, a, partials, s) : launch<T, std::int32_t, false>(plan, a, partials, s);
}

}  // namespace
}  // namespace volconv::cuda
