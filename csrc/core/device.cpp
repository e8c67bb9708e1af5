// Device availability, the default device and the stream registry. Streams
// are ids; a GPU stream maps to a queue of the GPU backend (gpu_backend.h): a
// Metal command queue or a CUDA stream, made on first use.
#include "volconv/device.h"

#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "backend.h"
#include "fork_safe_mutex.h"
#include "gpu_backend.h"

namespace volconv {
namespace {

struct Registry {
  detail::ForkSafeMutex mutex;
  int next_index = 1;  // 0 is the CPU default stream
  bool default_device_set = false;
  Device default_device;
  std::map<int, Stream> gpu_default;  // device index -> its default stream
  std::map<std::pair<int, std::uintptr_t>, Stream> external;  // (device, foreign handle) -> stream
  std::unordered_map<int, int> gpu_queue;  // stream index -> backend queue id
};

Registry& registry() {
  static Registry r;
  return r;
}

const char* device_name(const Device& d) { return d.type == DeviceType::cpu ? "cpu" : "gpu"; }

void require_available(const Device& device) {
  const std::string why = unavailable_reason(device);
  if (!why.empty())
    throw std::invalid_argument(std::string("[volconv] Device ") + device_name(device) + "(" +
                                std::to_string(device.index) + ") is not available: " + why + ".");
}

Stream make_gpu_stream(Registry& r, const Device& device) {
  const int queue = detail::gpu_new_queue(device.index);
  Stream s{r.next_index++, device};
  r.gpu_queue[s.index] = queue;
  return s;
}

}  // namespace

std::string unavailable_reason(const Device& device) {
  if (device.type == DeviceType::gpu) return detail::gpu_unavailable_reason(device.index);
  if (device.index != 0) return "only device index 0 exists";
  if (device.type == DeviceType::cpu) return "";
  return "unknown device type";
}

bool is_available(const Device& device) { return unavailable_reason(device).empty(); }

Device default_device() {
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  if (r.default_device_set) return r.default_device;
  // Only a Metal GPU is the automatic default (it shares memory with the
  // CPU); a CUDA GPU runs the calls given its arrays or a stream on it.
  return metal::unavailable_reason().empty() ? Device{DeviceType::gpu, 0} : Device{DeviceType::cpu, 0};
}

void set_default_device(const Device& device) {
  require_available(device);
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  r.default_device = device;
  r.default_device_set = true;
}

Stream default_stream(const Device& device) {
  require_available(device);
  if (device.type == DeviceType::cpu) return Stream{0, device};
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  auto it = r.gpu_default.find(device.index);
  if (it == r.gpu_default.end()) it = r.gpu_default.emplace(device.index, make_gpu_stream(r, device)).first;
  return it->second;
}

Stream new_stream(const Device& device) {
  require_available(device);
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  if (device.type == DeviceType::cpu) return Stream{r.next_index++, device};
  return make_gpu_stream(r, device);
}

namespace detail {
// True while the default device is the automatic choice (never set).
bool default_device_is_automatic() {
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  return !r.default_device_set;
}

// The backend queue of a GPU stream; throws for a stream this process never made.
int gpu_queue_of(const Stream& stream) {
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  auto it = r.gpu_queue.find(stream.index);
  if (it == r.gpu_queue.end())
    throw std::invalid_argument("[volconv] Unknown GPU stream " + std::to_string(stream.index) + ".");
  return it->second;
}
}  // namespace detail

void synchronize(const Stream& stream) {
  if (stream.device.type == DeviceType::cpu) {
    require_available(stream.device);
    return;  // CPU work completes before conv3d returns
  }
  require_available(stream.device);
  detail::gpu_synchronize(detail::gpu_queue_of(stream));
}

namespace detail {
Stream external_gpu_stream(const Device& device, std::uintptr_t handle) {
  if (device.type != DeviceType::gpu || gpu_kind() != GpuKind::cuda)
    throw std::invalid_argument("[volconv] Only a CUDA GPU takes streams made elsewhere.");
  require_available(device);
  Registry& r = registry();
  std::lock_guard<detail::ForkSafeMutex> lock(r.mutex);
  auto it = r.external.find({device.index, handle});
  if (it != r.external.end()) return it->second;
  Stream s{r.next_index++, device};
  r.gpu_queue[s.index] = cuda::wrap_queue(device.index, handle);
  r.external.emplace(std::make_pair(device.index, handle), s);
  return s;
}

std::uintptr_t gpu_stream_handle(const Stream& stream) {
  if (stream.device.type != DeviceType::gpu || gpu_kind() != GpuKind::cuda)
    throw std::invalid_argument("[volconv] Only a CUDA GPU stream has a cudaStream_t.");
  return cuda::queue_handle(gpu_queue_of(stream));
}

void* gpu_alloc(const Device& device, std::size_t bytes) {
  if (device.type != DeviceType::gpu || gpu_kind() != GpuKind::cuda)
    throw std::invalid_argument("[volconv] Only a CUDA GPU allocates results for DLPack.");
  require_available(device);
  return cuda::alloc_device(device.index, bytes);
}

void gpu_free(const Device& device, void* p) noexcept { cuda::free_device(device.index, p); }

void gpu_stream_wait(const Stream& waiter, const Stream& waited) {
  if (gpu_kind() != GpuKind::cuda) return;  // Metal calls wait for their work before returning
  cuda::queue_wait(gpu_queue_of(waiter), gpu_queue_of(waited));
}
}  // namespace detail

}  // namespace volconv
