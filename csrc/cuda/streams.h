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

// Device memory for the calls' scratch (the weight gradient's partial sums,
// cuDNN's workspace, host views copied in): volconv's own stream-ordered
// pool on `device`, which keeps up to kScratchKeepBytes of freed memory
// across synchronisations. The device's default pool returns freed memory
// to the driver at every synchronisation, so the first call after one
// mapped fresh memory again. nullptr where the pool could not be made (the
// caller then uses the default pool).
constexpr unsigned long long kScratchKeepBytes = 64ull << 20;
cudaMemPool_t scratch_pool(int device);

// The calling thread's current device, restored on the way out (torch and
// CuPy keep their own notion of it).
// Switches only when the device differs: two cudaSetDevice calls per call
// were host time on every small GPU call.
struct DeviceGuard {
  int previous = 0;
  bool switched = false;
  DeviceGuard(int device, const char* op) {
    check(cudaGetDevice(&previous), op, "cudaGetDevice");
    if (previous != device) {
      check(cudaSetDevice(device), op, "cudaSetDevice");
      switched = true;
    }
  }
  ~DeviceGuard() {
    if (switched) cudaSetDevice(previous);
  }
};

}  // namespace volconv::cuda
