// Linked instead of the CUDA host when the build has no CUDA compiler (or
// VOLCONV_CUDA=OFF): the CUDA GPU reports why it is unavailable and nothing
// else is reached (the core checks availability first).
#include <stdexcept>

#include "../core/backend.h"
#include "../core/conv_problem.h"

#ifndef VOLCONV_NO_CUDA_REASON
#define VOLCONV_NO_CUDA_REASON "it was built without CUDA"
#endif

namespace volconv::cuda {

std::string unavailable_reason(int) { return "this build of volconv has no CUDA backend (" VOLCONV_NO_CUDA_REASON ")"; }

namespace {
[[noreturn]] void unavailable() {
  throw std::invalid_argument("[volconv] The CUDA GPU is not available: " + unavailable_reason(0) + ".");
}
}  // namespace

int new_queue(int) { unavailable(); }
int wrap_queue(int, std::uintptr_t) { unavailable(); }
void queue_wait(int, int) { unavailable(); }
void synchronize(int) {}
std::uintptr_t queue_handle(int) { unavailable(); }
void* alloc_device(int, std::size_t) { unavailable(); }
void free_device(int, void*) {}
void conv3d(const detail::ConvCall&, int) { unavailable(); }
void run_problem(const detail::ConvProblem&, const char*, int) { unavailable(); }

}  // namespace volconv::cuda
