// The cuDNN path's non-finite fix-ups (dense_nonfinite.h), queued after
// cuDNN's call on its stream:
// - weight gradient: a thread reads one output-gradient element whose
//   window leaves the input (the "shell"), each lane one output channel;
//   writes from several threads to one sum are alike (NaN, or the same
//   recomputed sum), so their order does not matter. A first form, a row of
//   threads walking whole lines, took 15-26 us a call on the H200 (its loads
//   one after another; session 20); cuDNN's bfloat16 weight gradient itself
//   takes 23-35 us there.
// - data problems: dense_data_nonfinite_fix, below.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

#include "dense_nonfinite.h"
#include "elements.cuh"
#include "padding_band.cuh"

namespace volconv::cuda {
namespace {

constexpr int kLanes = 32, kRows = 8;

// dw's sum of logical tap (kd, kh, kw), output channel co and input channel
// ci of its group over the real input elements only (the skip rule), in
// float32, positions in order.
template <class T>
__device__ float skipped_tap_sum(const DenseWgradFix& f, std::int64_t co, int kd, int kh, int kw, std::int64_t ci) {
  const std::int64_t c = co / (f.out_channels / f.groups) * f.in_channels_per_group + ci;
  const T* x = static_cast<const T*>(f.x) + c * f.xs[4];
  const T* gy = static_cast<const T*>(f.gy) + co * f.gys[4];
  float acc = 0.f;
  for (std::int64_t n = 0; n < f.batch; ++n)
    for (int od = 0; od < f.out[0]; ++od) {
      const int id = source<false>(od, kd, f.stride[0], f.pad[0], f.kdil[0], 1, f.in[0]);
      if (id < 0) continue;
      for (int oh = 0; oh < f.out[1]; ++oh) {
        const int ih = source<false>(oh, kh, f.stride[1], f.pad[1], f.kdil[1], 1, f.in[1]);
        if (ih < 0) continue;
        for (int ow = 0; ow < f.out[2]; ++ow) {
          const int iw = source<false>(ow, kw, f.stride[2], f.pad[2], f.kdil[2], 1, f.in[2]);
          if (iw < 0) continue;
          acc += load(gy + (n * f.gys[0] + od * f.gys[1] + oh * f.gys[2] + ow * f.gys[3])) *
                 load(x + (n * f.xs[0] + id * f.xs[1] + ih * f.xs[2] + iw * f.xs[3]));
        }
      }
    }
  return acc;
}

// Output (od, oh, ow) of channel co holds a non-finite gradient: every tap
// that reads padding there gets NaN (the multiply rule) or its sums redone
// over real elements (the skip rule: the engine may have multiplied), for
// all its input channels. Threads that meet the same tap write the same
// values.
template <class T>
__device__ void fix_padding_taps(const DenseWgradFix& f, std::int64_t co, int od, int oh, int ow) {
  T* dw = static_cast<T*>(f.dw) + co * f.dws[0];
  for (int kd = 0; kd < f.kernel[0]; ++kd) {
    const bool out_d = source<false>(od, kd, f.stride[0], f.pad[0], f.kdil[0], 1, f.in[0]) < 0;
    for (int kh = 0; kh < f.kernel[1]; ++kh) {
      const bool out_h = source<false>(oh, kh, f.stride[1], f.pad[1], f.kdil[1], 1, f.in[1]) < 0;
      for (int kw = 0; kw < f.kernel[2]; ++kw) {
        if (!out_d && !out_h && source<false>(ow, kw, f.stride[2], f.pad[2], f.kdil[2], 1, f.in[2]) >= 0) continue;
        const int sd = f.flip ? f.kernel[0] - 1 - kd : kd, sh = f.flip ? f.kernel[1] - 1 - kh : kh,
                  sw = f.flip ? f.kernel[2] - 1 - kw : kw;
        T* tap = dw + sd * f.dws[1] + sh * f.dws[2] + sw * f.dws[3];
        for (std::int64_t ci = 0; ci < f.in_channels_per_group; ++ci)
          store(tap + ci * f.dws[4],
                f.recompute ? skipped_tap_sum<T>(f, co, kd, kh, kw, ci) : __int_as_float(0x7fc00000));  // NaN
      }
    }
  }
}

// The outputs whose window leaves the input, per batch item: the two D
// faces (whole slices), then the H faces of the other slices (whole rows),
// then the W ends of the remaining rows. Face coordinate c of an axis is
// output c below the inside band, or last + (c - first) above it. Made on
// the host, once a call.
struct Shell {
  int first[3], last[3], out[3];
  std::int64_t d_faces, h_faces, w_ends;  // positions in each part
  __host__ __device__ int face(int axis, int c) const { return c < first[axis] ? c : last[axis] + (c - first[axis]); }
  __host__ __device__ int faces(int axis) const { return first[axis] + out[axis] - last[axis]; }
  __host__ __device__ std::int64_t size() const { return d_faces + h_faces + w_ends; }
  // Position j of the shell, I wide enough for the batch's positions.
  template <class I>
  __host__ __device__ void position(I j, int& od, int& oh, int& ow) const {
    if (j < I(d_faces)) {
      ow = int(j % out[2]);
      oh = int(j / out[2] % out[1]);
      od = face(0, int(j / out[2] / out[1]));
      return;
    }
    j -= I(d_faces);
    if (j < I(h_faces)) {
      ow = int(j % out[2]);
      oh = face(1, int(j / out[2] % faces(1)));
      od = first[0] + int(j / out[2] / faces(1));
      return;
    }
    j -= I(h_faces);
    ow = face(2, int(j % faces(2)));
    oh = first[1] + int(j / faces(2) % (last[1] - first[1]));
    od = first[0] + int(j / faces(2) / (last[1] - first[1]));
  }
};

Shell shell_of(const DenseWgradFix& f) {
  Shell s;
  for (int i = 0; i < 3; ++i) {
    inside_band(f.out[i], f.in[i], f.kernel[i], f.stride[i], f.pad[i], f.kdil[i], s.first[i], s.last[i]);
    s.out[i] = f.out[i];
  }
  const std::int64_t inner_d = s.last[0] - s.first[0], inner_h = s.last[1] - s.first[1];
  s.d_faces = std::int64_t(s.faces(0)) * f.out[1] * f.out[2];
  s.h_faces = inner_d * s.faces(1) * f.out[2];
  s.w_ends = inner_d * inner_h * s.faces(2);
  return s;
}

// Block: 32 output channels (lanes) x 8 shell positions (rows); grid.x over
// the batch's shell positions, grid.y over channel blocks. One load a
// thread, so the scan takes about one wave's latency. I: int where the
// positions and gy's offsets fit (64-bit divisions cost most of the time).
template <class T, class I>
__global__ void __launch_bounds__(kLanes* kRows) dense_wgrad_nonfinite_fix(DenseWgradFix f, Shell s) {
  const I co = I(blockIdx.y) * kLanes + I(threadIdx.x);
  const I size = I(s.size());
  const I j = I(blockIdx.x) * kRows + I(threadIdx.y);
  if (co >= I(f.out_channels) || j >= I(f.batch) * size) return;
  const I n = j / size;
  int od, oh, ow;
  s.position<I>(j - n * size, od, oh, ow);
  const T* gy = static_cast<const T*>(f.gy) + n * I(f.gys[0]) + od * I(f.gys[1]) + oh * I(f.gys[2]) +
                ow * I(f.gys[3]) + co * I(f.gys[4]);
  if (!isfinite(load(gy))) fix_padding_taps<T>(f, co, od, oh, ow);
}

// The stored weight element of logical output channel co, stored tap
// (sd, sh, sw) and input channel c of its group (conv_problem.h's layouts).
template <class T>
__device__ __forceinline__ float weight_at(const DenseDataFix& f, std::int64_t co, int sd, int sh, int sw,
                                           std::int64_t c) {
  const std::int64_t cig = f.in_channels / f.groups, cog = f.out_channels / f.groups;
  const std::int64_t a = f.in_k_out ? co / cog * cig + c : co, b = f.in_k_out ? co % cog : c;
  return load(static_cast<const T*>(f.w) + (a * f.ws[0] + sd * f.ws[1] + sh * f.ws[2] + sw * f.ws[3] + b * f.ws[4]));
}

template <class T>
__device__ float exact_output(const DenseDataFix& f, std::int64_t n, int od, int oh, int ow, std::int64_t co) {
  const std::int64_t cig = f.in_channels / f.groups, c0 = co / (f.out_channels / f.groups) * cig;
  const T* x = static_cast<const T*>(f.x) + n * f.xs[0];
  float acc = 0.f;
  for (int kd = 0; kd < f.kernel[0]; ++kd) {
    const int id = source<true>(od, kd, f.stride[0], f.pad[0], f.kdil[0], f.idil[0], f.in[0]);
    for (int kh = 0; kh < f.kernel[1]; ++kh) {
      const int ih = source<true>(oh, kh, f.stride[1], f.pad[1], f.kdil[1], f.idil[1], f.in[1]);
      for (int kw = 0; kw < f.kernel[2]; ++kw) {
        const int iw = source<true>(ow, kw, f.stride[2], f.pad[2], f.kdil[2], f.idil[2], f.in[2]);
        const bool real = id >= 0 && ih >= 0 && iw >= 0;
        if (!real && !f.multiply_padding) continue;  // the scatter: a zero never meets the weight
        const int sd = f.flip ? f.kernel[0] - 1 - kd : kd, sh = f.flip ? f.kernel[1] - 1 - kh : kh,
                  sw = f.flip ? f.kernel[2] - 1 - kw : kw;
        for (std::int64_t c = 0; c < cig; ++c) {
          const float w = weight_at<T>(f, co, sd, sh, sw, c);
          acc += real ? load(x + (id * f.xs[1] + ih * f.xs[2] + iw * f.xs[3] + (c0 + c) * f.xs[4])) * w : 0.f * w;
        }
      }
    }
  }
  return acc;
}

// Block: kScan of the logical weight's elements (C_out, K..., C_in/groups)
// in order, kScanPerThread a thread, so a call whose weights are finite
// costs one short wave (session 20: a first form, a lane a channel scanning
// its weights alone, took 98-153 us a call on the H200). A block that finds
// a non-finite element recomputes every output of that element's channel,
// all its threads together; two blocks may both redo a channel, writing the
// same values.
constexpr int kScanThreads = 256, kScanPerThread = 4, kScan = kScanThreads * kScanPerThread;

template <class T>
__global__ void __launch_bounds__(kScanThreads) dense_data_nonfinite_fix(DenseDataFix f) {
  const std::int64_t cig = f.in_channels / f.groups;
  const std::int64_t per_channel = std::int64_t(f.kernel[0]) * f.kernel[1] * f.kernel[2] * cig;
  const std::int64_t base = std::int64_t(blockIdx.x) * kScan;
  const std::int64_t co_first = base / per_channel;
  // The block's elements span at most kScan + 1 channels.
  __shared__ unsigned char channel_bad[kScan + 1];
  for (int i = threadIdx.x; i <= kScan; i += kScanThreads) channel_bad[i] = 0;
  __syncthreads();
  bool bad = false;
  for (int e = 0; e < kScanPerThread; ++e) {
    const std::int64_t i = base + std::int64_t(e) * kScanThreads + threadIdx.x;
    if (i >= f.out_channels * per_channel) break;
    const std::int64_t co = i / per_channel, rest = i % per_channel, c = rest % cig;
    const int t = int(rest / cig);
    const int sd = t / (f.kernel[1] * f.kernel[2]), sh = t / f.kernel[2] % f.kernel[1], sw = t % f.kernel[2];
    if (!isfinite(weight_at<T>(f, co, sd, sh, sw, c))) {
      channel_bad[co - co_first] = 1;
      bad = true;
    }
  }
  if (!__syncthreads_or(bad)) return;
  const std::int64_t plane = std::int64_t(f.out[1]) * f.out[2], volume = f.out[0] * plane;
  for (int k = 0; k <= kScan; ++k) {
    if (!channel_bad[k]) continue;
    const std::int64_t co = co_first + k;
    for (std::int64_t p = threadIdx.x; p < f.batch * volume; p += kScanThreads) {
      const std::int64_t n = p / volume, r = p % volume;
      const int od = int(r / plane), oh = int(r / f.out[2] % f.out[1]), ow = int(r % f.out[2]);
      store(static_cast<T*>(f.y) + (n * f.ys[0] + od * f.ys[1] + oh * f.ys[2] + ow * f.ys[3] + co * f.ys[4]),
            exact_output<T>(f, n, od, oh, ow, co));
    }
  }
}

template <class T>
void launch_typed(const DenseWgradFix& f, const Shell& s, std::int64_t positions, cudaStream_t stream) {
  const dim3 grid(unsigned((positions + kRows - 1) / kRows), unsigned((f.out_channels + kLanes - 1) / kLanes));
  const dim3 block(kLanes, kRows);
  const std::int64_t sizes[5] = {f.batch, f.out[0], f.out[1], f.out[2], f.out_channels};
  std::int64_t last_offset = 0;
  for (int i = 0; i < 5; ++i) last_offset += (sizes[i] - 1) * f.gys[i];
  const std::int64_t lim = std::numeric_limits<int>::max();
  if (positions + kRows < lim && last_offset < lim && f.out_channels + kLanes < lim)
    dense_wgrad_nonfinite_fix<T, int><<<grid, block, 0, stream>>>(f, s);
  else
    dense_wgrad_nonfinite_fix<T, std::int64_t><<<grid, block, 0, stream>>>(f, s);
}

}  // namespace

int launch_dense_wgrad_nonfinite_fix(const DenseWgradFix& f, Elem elem, void* stream) {
  bool reads_padding = false;
  for (int i = 0; i < 3; ++i)
    reads_padding |= axis_reads_zeros(f.out[i], f.in[i], f.kernel[i], f.stride[i], f.pad[i], f.kdil[i], 1);
  if (f.batch == 0 || f.out_channels == 0 || !reads_padding) return 0;
  const Shell s = shell_of(f);
  const std::int64_t positions = f.batch * s.size();
  if (positions == 0) return 0;
  const auto st = static_cast<cudaStream_t>(stream);
  switch (elem) {
    case Elem::f32: launch_typed<float>(f, s, positions, st); break;
    case Elem::f16: launch_typed<__half>(f, s, positions, st); break;
    case Elem::bf16: launch_typed<__nv_bfloat16>(f, s, positions, st); break;
  }
  return int(cudaGetLastError());
}

int launch_dense_data_nonfinite_fix(const DenseDataFix& f, Elem elem, void* stream) {
  const std::int64_t outputs = f.batch * f.out[0] * f.out[1] * std::int64_t(f.out[2]);
  bool reads_zeros = false;
  for (int i = 0; i < 3; ++i)
    reads_zeros |= axis_reads_zeros(f.out[i], f.in[i], f.kernel[i], f.stride[i], f.pad[i], f.kdil[i], f.idil[i]);
  if (outputs == 0 || f.out_channels == 0 || !reads_zeros) return 0;
  const std::int64_t elements =
      f.out_channels * f.kernel[0] * f.kernel[1] * std::int64_t(f.kernel[2]) * (f.in_channels / f.groups);
  const dim3 grid(unsigned((elements + kScan - 1) / kScan)), block(kScanThreads);
  const auto s = static_cast<cudaStream_t>(stream);
  switch (elem) {
    case Elem::f32: dense_data_nonfinite_fix<float><<<grid, block, 0, s>>>(f); break;
    case Elem::f16: dense_data_nonfinite_fix<__half><<<grid, block, 0, s>>>(f); break;
    case Elem::bf16: dense_data_nonfinite_fix<__nv_bfloat16><<<grid, block, 0, s>>>(f); break;
  }
  return int(cudaGetLastError());
}

}  // namespace volconv::cuda
