// Device memory for one call on a CUDA stream: views in host memory copied
// in (same strides) and scratch allocations, all freed on the stream when
// the call's work is queued (volconv's scratch pool on the device keeps
// them for the next call: streams.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "../core/view_checks.h"
#include "streams.h"
#include "volconv/out_of_memory.h"
#include "volconv/tensor.h"

namespace volconv::cuda {

inline bool in_device_memory(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

struct Staged {
  const char* op;
  cudaStream_t stream;
  cudaMemPool_t pool;  // nullptr: the device's default pool
  std::vector<void*> allocations;
  Staged(const char* o, cudaStream_t s, int device) : op(o), stream(s), pool(scratch_pool(device)) {}
  Staged(const Staged&) = delete;
  Staged& operator=(const Staged&) = delete;
  ~Staged() {
    for (void* p : allocations) cudaFreeAsync(p, stream);
  }

  void* device_alloc(std::size_t bytes, const char* what) {
    void* p = nullptr;
    const cudaError_t err =
        pool != nullptr ? cudaMallocFromPoolAsync(&p, bytes, pool, stream) : cudaMallocAsync(&p, bytes, stream);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory(op, bytes, what);
    }
    check(err, op, "cudaMallocAsync");
    allocations.push_back(p);
    return p;
  }

  // Device address of element 0 of `v`; copies a host view's span in.
  const void* in(const ConstTensorView& v, const char* what) {
    if (numel(v.shape) == 0 || in_device_memory(v.data)) return v.data;  // an empty view is never read
    const detail::ByteRange r = detail::byte_range(v.data, v.dtype, v.shape, v.strides);
    char* d = static_cast<char*>(device_alloc(r.hi - r.lo + 1, what));
    check(cudaMemcpyAsync(d, reinterpret_cast<const void*>(r.lo), r.hi - r.lo + 1, cudaMemcpyHostToDevice, stream),
          op, "the copy to the GPU");
    return d + (reinterpret_cast<std::uintptr_t>(v.data) - r.lo);
  }

  // Copies a host result's span back from its device copy `device_elem0`
  // (made by in()) and waits for it.
  void back(const TensorView& res, const void* device_elem0) {
    const detail::ByteRange r = detail::byte_range(res.data, res.dtype, res.shape, res.strides);
    const char* d = static_cast<const char*>(device_elem0) - (reinterpret_cast<std::uintptr_t>(res.data) - r.lo);
    check(cudaMemcpyAsync(reinterpret_cast<void*>(r.lo), d, r.hi - r.lo + 1, cudaMemcpyDeviceToHost, stream), op,
          "the copy from the GPU");
    check(cudaStreamSynchronize(stream), op, "cudaStreamSynchronize");
  }
};

}  // namespace volconv::cuda
