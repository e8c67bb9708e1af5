// Which backend `gpu` is in this process, as mx.gpu is in MLX: Metal where
// it can run (Apple silicon), else CUDA where a device exists. Chosen once,
// here; the rest of the core calls these and never a backend by name.
#pragma once

#include <cstdint>
#include <string>

#include "backend.h"
#include "conv_problem.h"
#include "volconv/device.h"

namespace volconv::detail {

enum class GpuKind { none, metal, cuda };
GpuKind gpu_kind();

// "" when GPU `index` can run the kernels; else why not, naming each
// backend looked for.
std::string gpu_unavailable_reason(int index);
int gpu_new_queue(int index);
void gpu_synchronize(int queue);
void gpu_conv3d(const ConvCall& call, int queue);
void gpu_run_problem(const ConvProblem& problem, const char* op, int queue);

// CUDA only: a stream made elsewhere (e.g. torch.cuda.current_stream()) as
// a volconv Stream, and ordering one stream after another's queued work.
Stream external_gpu_stream(const Device& device, std::uintptr_t handle);
void gpu_stream_wait(const Stream& waiter, const Stream& waited);

// CUDA only, for arrays exchanged through DLPack with producers volconv has
// no allocator of (JAX): the cudaStream_t of a GPU stream, and device memory
// for a result (freed by gpu_free).
std::uintptr_t gpu_stream_handle(const Stream& stream);
void* gpu_alloc(const Device& device, std::size_t bytes);
void gpu_free(const Device& device, void* p) noexcept;

}  // namespace volconv::detail
