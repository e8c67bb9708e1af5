#include <cstdint>

#include "filter_transform.h"

namespace volconv::cuda {
namespace {

struct Strides5 {
  std::int64_t s[5];
};

template <class T>
__global__ void filter_transform_kernel(FilterTransform t, const T* src, Strides5 ss, T* dst, Strides5 ds,
                                        std::int64_t total) {
  const std::int64_t taps = t.kernel[0] * t.kernel[1] * t.kernel[2];
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += std::int64_t(gridDim.x) * blockDim.x) {
    // dst index (n = g*b + j, kd, kh, kw, i), packed order.
    const std::int64_t i = e % t.a;
    std::int64_t rest = e / t.a;
    const std::int64_t tap = rest % taps;
    const std::int64_t n = rest / taps;
    std::int64_t k[3] = {tap / (t.kernel[1] * t.kernel[2]), (tap / t.kernel[2]) % t.kernel[1], tap % t.kernel[2]};
    const std::int64_t g = n / t.b, j = n % t.b;
    std::int64_t so = 0, dof = n * ds.s[0] + i * ds.s[4];
    for (int d = 0; d < 3; ++d) {
      dof += k[d] * ds.s[1 + d];
      so += (t.reverse_taps ? t.kernel[d] - 1 - k[d] : k[d]) * ss.s[1 + d];
    }
    so += t.swap_channels ? (g * t.a + i) * ss.s[0] + j * ss.s[4] : n * ss.s[0] + i * ss.s[4];
    dst[dof] = src[so];
  }
}

}  // namespace

cudaError_t launch_filter_transform(const FilterTransform& t, const void* src, const std::int64_t (&src_strides)[5],
                                    void* dst, const std::int64_t (&dst_strides)[5], int elem_bytes,
                                    cudaStream_t stream) {
  const std::int64_t total = t.groups * t.b * t.kernel[0] * t.kernel[1] * t.kernel[2] * t.a;
  if (total == 0) return cudaSuccess;
  Strides5 ss{}, ds{};
  for (int d = 0; d < 5; ++d) {
    ss.s[d] = src_strides[d];
    ds.s[d] = dst_strides[d];
  }
  const int threads = 256;
  const std::int64_t blocks = (total + threads - 1) / threads;
  const unsigned grid = unsigned(blocks < 65535 ? blocks : 65535);
  // Elements are moved as bits: the dtype does not matter, only its size.
  if (elem_bytes == 2)
    filter_transform_kernel<std::uint16_t><<<grid, threads, 0, stream>>>(
        t, static_cast<const std::uint16_t*>(src), ss, static_cast<std::uint16_t*>(dst), ds, total);
  else
    filter_transform_kernel<std::uint32_t><<<grid, threads, 0, stream>>>(
        t, static_cast<const std::uint32_t*>(src), ss, static_cast<std::uint32_t*>(dst), ds, total);
  return cudaGetLastError();
}

}  // namespace volconv::cuda
