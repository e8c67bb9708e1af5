#include "gpu_backend.h"

#include <stdexcept>

namespace volconv::detail {

GpuKind gpu_kind() {
  static const GpuKind kind = [] {
    if (metal::unavailable_reason().empty()) return GpuKind::metal;
    if (cuda::unavailable_reason(0).empty()) return GpuKind::cuda;
    return GpuKind::none;
  }();
  return kind;
}

std::string gpu_unavailable_reason(int index) {
  switch (gpu_kind()) {
    case GpuKind::metal: return index == 0 ? "" : "only device index 0 exists";
    case GpuKind::cuda: return cuda::unavailable_reason(index);
    case GpuKind::none: break;
  }
  return "no GPU backend can run here: " + metal::unavailable_reason() + "; and " + cuda::unavailable_reason(index);
}

int gpu_new_queue(int index) {
  return gpu_kind() == GpuKind::cuda ? cuda::new_queue(index) : metal::new_queue();
}

void gpu_synchronize(int queue) {
  if (gpu_kind() == GpuKind::cuda)
    cuda::synchronize(queue);
  else
    metal::synchronize(queue);
}

void gpu_conv3d(const ConvCall& call, int queue) {
  if (gpu_kind() == GpuKind::cuda)
    cuda::conv3d(call, queue);
  else
    metal::conv3d(call, queue);
}

void gpu_run_problem(const ConvProblem& problem, const char* op, int queue) {
  if (gpu_kind() == GpuKind::cuda)
    cuda::run_problem(problem, op, queue);
  else
    metal::run_problem(problem, op, queue);
}

}  // namespace volconv::detail
