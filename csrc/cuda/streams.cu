// CUDA devices and queues: the availability probe, and the cudaStream_t
// behind each queue id the core's stream registry hands out (streams volconv
// made, and foreign ones, such as torch's current stream, it only orders on).
#include <cuda_runtime.h>

#include <mutex>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "streams.h"

namespace volconv::cuda {
namespace {

struct Queue {
  int device;
  cudaStream_t stream;
  bool owned;  // made here (never destroyed: streams live as long as the process)
};

std::mutex g_mutex;
std::vector<Queue>& queues() {
  static auto* q = new std::vector<Queue>;  // never destroyed: safe at exit
  return *q;
}

// The kernels are built for compute capability 9.0 (SASS) plus its PTX,
// which newer GPUs compile at load.
constexpr int kMinMajor = 9;

}  // namespace

cudaMemPool_t scratch_pool(int device) {
  static std::mutex mutex;
  static auto* pools = new std::vector<std::pair<bool, cudaMemPool_t>>;  // (tried, pool); never destroyed
  std::lock_guard<std::mutex> lock(mutex);
  if (device < 0) return nullptr;
  if (device >= int(pools->size())) pools->resize(std::size_t(device) + 1, {false, nullptr});
  auto& [tried, pool] = (*pools)[std::size_t(device)];
  if (!tried) {
    tried = true;
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    if (cudaMemPoolCreate(&pool, &props) != cudaSuccess) {
      cudaGetLastError();
      pool = nullptr;
    } else {
      unsigned long long keep = kScratchKeepBytes;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
  }
  return pool;
}

void check(cudaError_t err, const char* op, const char* what) {
  if (err == cudaSuccess) return;
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it: the device is still usable
    throw std::runtime_error(std::string("[") + op + "] Could not allocate GPU memory for " + what + ".");
  }
  throw std::runtime_error(std::string("[") + op + "] CUDA error in " + what + ": " + cudaGetErrorName(err) + " (" +
                           cudaGetErrorString(err) + ").");
}

std::string unavailable_reason(int device) {
  static const std::pair<int, std::string> probe = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorInsufficientDriver) {
      cudaGetLastError();
      return std::make_pair(0, std::string("no NVIDIA driver was found, or it is older than the CUDA ") +
                                   std::to_string(CUDART_VERSION / 1000) + "." +
                                   std::to_string(CUDART_VERSION % 1000 / 10) + " runtime this build uses");
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      return std::make_pair(0, std::string("no usable CUDA driver or device (cudaGetDeviceCount: ") +
                                   cudaGetErrorName(err) + ", " + cudaGetErrorString(err) + ")");
    }
    if (count == 0) return std::make_pair(0, std::string("no CUDA device was found"));
    return std::make_pair(count, std::string());
  }();
  if (!probe.second.empty()) return probe.second;
  if (device < 0 || device >= probe.first)
    return "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(probe.first) +
           " found)";
  int major = 0, minor = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  if (major < kMinMajor)
    return "CUDA device " + std::to_string(device) + " has compute capability " + std::to_string(major) + "." +
           std::to_string(minor) + "; volconv's CUDA kernels need 9.0 or newer";
  return "";
}

int new_queue(int device) {
  const DeviceGuard on_device(device, "volconv");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "volconv", "cudaStreamCreate");
  std::lock_guard<std::mutex> lock(g_mutex);
  queues().push_back({device, s, true});
  return int(queues().size()) - 1;
}

int wrap_queue(int device, std::uintptr_t handle) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& q = queues();
  for (std::size_t i = 0; i < q.size(); ++i)
    if (!q[i].owned && q[i].device == device && reinterpret_cast<std::uintptr_t>(q[i].stream) == handle)
      return int(i);
  q.push_back({device, reinterpret_cast<cudaStream_t>(handle), false});
  return int(q.size()) - 1;
}

QueueHandle queue(int id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  const Queue& q = queues().at(std::size_t(id));
  return {q.device, q.stream};
}

void synchronize(int id) {
  const QueueHandle q = queue(id);
  const DeviceGuard on_device(q.device, "synchronize");
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(q.stream)), "synchronize", "cudaStreamSynchronize");
}

std::uintptr_t queue_handle(int id) { return reinterpret_cast<std::uintptr_t>(queue(id).stream); }

void* alloc_device(int device, std::size_t bytes) {
  const DeviceGuard on_device(device, "volconv");
  void* p = nullptr;
  check(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "volconv", "the result");
  return p;
}

void free_device(int device, void* p) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess) return;
  if (previous != device) cudaSetDevice(device);
  cudaFree(p);
  if (previous != device) cudaSetDevice(previous);
}

void queue_wait(int waiter, int waited) {
  const QueueHandle a = queue(waiter), b = queue(waited);
  if (a.stream == b.stream) return;
  const DeviceGuard on_device(b.device, "volconv");
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "volconv", "cudaEventCreate");
  check(cudaEventRecord(e, static_cast<cudaStream_t>(b.stream)), "volconv", "cudaEventRecord");
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(a.stream), e, 0), "volconv", "cudaStreamWaitEvent");
  cudaEventDestroy(e);  // released once the wait has happened
}

}  // namespace volconv::cuda
