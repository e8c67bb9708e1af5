// Rewriting a filter between the layout a problem stores and the one cuDNN
// reads (cudnn_plan.h's FilterMap): transposed within groups, taps reversed,
// or both; any strides on either side. One thread per element: filters are
// small next to the convolution that reads them.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace volconv::cuda {

struct FilterTransform {
  std::int64_t groups = 1, b = 0, a = 0;  // dst is (groups * b, K..., a)
  std::int64_t kernel[3] = {1, 1, 1};
  bool swap_channels = false, reverse_taps = false;
};

// dst[g*b + j, k, i] = src[g*a + i, kk, j] when swap_channels, else
// src[g*b + j, kk, i]; kk = K-1-k per axis when reverse_taps, else k. Both
// maps are their own inverses. Strides in elements (N, D, H, W, C order);
// elem_bytes 2 or 4.
cudaError_t launch_filter_transform(const FilterTransform& t, const void* src, const std::int64_t (&src_strides)[5],
                                    void* dst, const std::int64_t (&dst_strides)[5], int elem_bytes,
                                    cudaStream_t stream);

}  // namespace volconv::cuda
