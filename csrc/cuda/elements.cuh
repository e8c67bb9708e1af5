// Reading and writing one element of a stored tensor as float, and the
// input index a tap reads: shared by the depthwise kernels
// (depthwise_kernels.cuh) and the cuDNN path's fix-ups (dense_nonfinite.cu).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace volconv::cuda {
namespace {

__device__ __forceinline__ float load(const float* p) { return __ldg(p); }
__device__ __forceinline__ float load(const __half* p) { return __half2float(__ldg(p)); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(__ldg(p)); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// The input index read by output o at tap k on one axis, or -1 when that
// read is padding or an inserted zero of the input dilation.
template <bool Dilated>
__device__ __forceinline__ int source(int o, int k, int stride, int pad, int kdil, int idil, int in) {
  int j = o * stride - pad + k * kdil;
  if (j < 0) return -1;
  if (Dilated) {
    if (j % idil) return -1;
    j /= idil;
  }
  return j < in ? j : -1;
}

}  // namespace
}  // namespace volconv::cuda
