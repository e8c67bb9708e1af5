// Linked instead of the Metal host when the build has no Metal (Linux,
// Windows): the GPU reports itself unavailable and nothing else is reached.
#include <stdexcept>

#include "../core/backend.h"
#include "../core/conv_problem.h"

namespace volconv::metal {

std::string unavailable_reason() {
  return "this build of volconv has no Metal backend (Metal exists only on macOS with an Apple GPU)";
}

int new_queue() { throw std::invalid_argument("[volconv] The GPU is not available: " + unavailable_reason() + "."); }

void conv3d(const detail::ConvCall&, int) { new_queue(); }

void run_problem(const detail::ConvProblem&, const char*, int) { new_queue(); }

void synchronize(int) {}

void* buffer_contents(const void*) { return nullptr; }

}  // namespace volconv::metal
