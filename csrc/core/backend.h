// What csrc/core hands a backend: a validated call. Each backend implements
// its functions in its own folder; a build without Metal links
// csrc/metal/no_metal.cpp instead of the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv::detail {

// A call that passed validation: shapes match the geometry, the output dtype
// is the promotion of the inputs' and the output overlaps neither input.
struct ConvCall {
  const ConvGeometry& geometry;
  ConstTensorView input;
  ConstTensorView weight;
  TensorView output;
};

}  // namespace volconv::detail

namespace volconv::cpu {
struct PrepackedWeights;  // cpu/prepacked_weights.h
// prepacked: weights packed ahead (volconv/packed_weights.h), or nullptr.
void conv3d(const detail::ConvCall& call, const PrepackedWeights* prepacked = nullptr);
}

namespace volconv::metal {
// Failures that mean the GPU cannot run the kernels at all throw
// detail::GpuUnusable (core/gpu_fallback.h); everything else throws as usual.
// "" when a Metal device with the GPU family the kernels need exists.
std::string unavailable_reason();
// A new command queue; returns its id.
int new_queue();
// Encodes the call on `queue` and waits for it to finish.
void conv3d(const detail::ConvCall& call, int queue);
void synchronize(int queue);
// The CPU address of a shared-storage MTLBuffer's contents; nullptr for
// private storage, and always in a build without Metal.
void* buffer_contents(const void* metal_buffer);
}  // namespace volconv::metal

namespace volconv::cuda {
// The CUDA backend (csrc/cuda/), or its stub (csrc/cuda/no_cuda.cpp) in a
// build without a CUDA compiler. Queues are ids of cudaStream_t's.
// "" when CUDA device `device` exists and can run the kernels.
std::string unavailable_reason(int device);
// A new non-blocking stream on `device`; returns its queue id.
int new_queue(int device);
// The queue id of a stream made elsewhere (torch's current stream): volconv
// orders its work on it but never destroys it.
int wrap_queue(int device, std::uintptr_t handle);
// Work queued on `waiter` from now on starts after what `waited` has queued.
void queue_wait(int waiter, int waited);
void synchronize(int queue);
// The cudaStream_t behind a queue: what a DLPack producer is asked to order
// its data on.
std::uintptr_t queue_handle(int queue);
// Device memory on `device` for a result handed out through DLPack (to
// JAX and other producers whose allocator volconv cannot call), released
// by free_device.
void* alloc_device(int device, std::size_t bytes);
void free_device(int device, void* p);  // never throws: called from a DLPack deleter
// Queue the call on `queue` (device pointers are used in place, host memory
// is copied in and the result copied back before returning).
void conv3d(const detail::ConvCall& call, int queue);
}  // namespace volconv::cuda
