// Running a problem the route sends to cuDNN (forward, backward data or backward
// filter; cudnn_host.cu): the route cudnn_plan.h chose, on the caller's stream.
#pragma once

#include "../core/conv_problem.h"
#include "cudnn_plan.h"
#include "staging.h"

namespace volconv::cuda {

// Queues the problem on staged.stream of device `device`; host views are
// copied in and the result back (staged). Throws std::invalid_argument
// naming `op` when cuDNN cannot be loaded.
void run_cudnn(const detail::ConvProblem& problem, const cuda_plan::CudaRouteChoice& route, const char* op,
               int device, Staged& staged);

}  // namespace volconv::cuda
