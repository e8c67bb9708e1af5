// Hopper's bulk tensor copies (TMA) for the pairs kernel: a tensor map of
// an NDHWC view, made on the host, lets one thread copy a whole box of it
// (a tile's input slice) into shared memory with one instruction; elements
// outside the view arrive as zeros (the padding), and the copy's bytes
// complete a phase of an mbarrier that the block waits on. The per-thread
// 16-byte cp.async staging instead costs each thread address arithmetic and
// a copy instruction per chunk every step.
#pragma once

#include <cuda.h>
#include <cuda_fp16.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace volconv::cuda {
namespace {

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarrier_init(std::uint64_t* bar, unsigned arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(arrivals) : "memory");
}
// Makes the initialised barriers visible to the copy engine (before the
// block's barrier that publishes them to the other threads).
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The one arrival of a phase, announcing `bytes` still to come from copies.
__device__ __forceinline__ void mbarrier_expect_bytes(std::uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)), "r"(bytes)
               : "memory");
}
// Until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait(std::uint64_t* bar, unsigned parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n"
      "}\n" ::"r"(shared_address(bar)),
      "r"(parity)
      : "memory");
}

// Copies the box of `map` at coordinates (c, w, h, d, n) (innermost first;
// any of them may lie outside the view) into `dst` (128-byte aligned),
// completing its bytes on `bar`.
__device__ __forceinline__ void tensor_copy_5d(void* dst, const CUtensorMap& map, std::uint64_t* bar, int c, int w,
                                               int h, int d, int n) {
  asm volatile(
      "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6, "
      "%7}], [%2];\n" ::"r"(shared_address(dst)),
      "l"(reinterpret_cast<std::uint64_t>(&map)), "r"(shared_address(bar)), "r"(c), "r"(w), "r"(h), "r"(d), "r"(n)
      : "memory");
}

// The driver's tensor-map encoder, looked up once (nullptr when the driver
// has none: the planner then keeps the cp.async kernels).
inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  return encoder;
}

template <class T>
constexpr CUtensorMapDataType tensor_map_type() {
  static_assert(sizeof(T) == 2, "the 16-bit storage types");
  return std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
}

// A tensor map of the NDHWC view at `base` (dims n, d, h, w, c; strides in
// elements, channel stride 1) whose box is (box_c channels, box_w, box_h, one
// depth, one batch), zeros outside the view. False when the view breaks the
// copy engine's rules (a 16-byte aligned start, strides multiples of 16
// bytes below 2^40, dimensions of size 1 aside; sizes below 2^31) or no
// encoder is found.
template <class T>
bool ndhwc_box_map(CUtensorMap& map, const void* base, const std::int64_t (&dims)[5],
                   const std::int64_t (&strides)[5], int box_c, int box_w, int box_h) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (encode == nullptr || strides[4] != 1 || reinterpret_cast<std::uintptr_t>(base) % 16 != 0) return false;
  cuuint64_t size[5], stride[4];
  for (int i = 0; i < 5; ++i) {
    // Box coordinates are signed 32-bit.
    if (dims[4 - i] < 1 || dims[4 - i] >= (std::int64_t(1) << 31)) return false;
    size[i] = cuuint64_t(dims[4 - i]);  // innermost first
  }
  // A dimension of size 1 is never stepped along, so its stride may be
  // anything in the view: it gets a legal one (the packed stride).
  std::int64_t packed = std::int64_t(dims[4]) * std::int64_t(sizeof(T));
  for (int i = 0; i < 4; ++i) {
    const int dim = 3 - i;  // W, H, D, N
    const std::int64_t bytes =
        dims[dim] == 1 ? (packed + 15) / 16 * 16 : strides[dim] * std::int64_t(sizeof(T));
    if (bytes <= 0 || bytes % 16 != 0 || bytes >= (std::int64_t(1) << 40)) return false;
    stride[i] = cuuint64_t(bytes);
    packed = bytes * dims[dim];
  }
  const cuuint32_t box[5] = {cuuint32_t(box_c), cuuint32_t(box_w), cuuint32_t(box_h), 1, 1};
  const cuuint32_t step[5] = {1, 1, 1, 1, 1};
  return encode(&map, tensor_map_type<T>(), 5, const_cast<void*>(base), size, stride, box, step,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace
}  // namespace volconv::cuda
