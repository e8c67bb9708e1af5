// Shared by the CUDA host files: the stream behind a queue id, and turning a
// CUDA error into an exception that names the op.
#pragma once

#include <cuda_runtime.h>

namespace volconv::cuda {

struct QueueHandle {
  int device;
  void* stream;  // cudaStream_t
};

QueueHandle queue(int id);

// Throws std::runtime_error "[op] CUDA error in what: ..." (a clear message
// for an allocation failure) unless err is cudaSuccess.
void check(cudaError_t err, const char* op, const char* what);

// The calling thread's current device, restored on the way out (torch and
// CuPy keep their own notion of it).
struct DeviceGuard {
  int previous = 0;
  DeviceGuard(int device, const char* op) {
    check(cudaGetDevice(&previous), op, "cudaGetDevice");
    check(cudaSetDevice(device), op, "cudaSetDevice");
  }
  ~DeviceGuard() { cudaSetDevice(previous); }
};

}  // namespace volconv::cuda
