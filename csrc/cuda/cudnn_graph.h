// cuDNN's graph API for the route's one convolution (cudnn_plan.h): an
// execution plan built once per problem value, pointer alignment and thread
// (the legacy calls cost 50-80 us of host time each in cuDNN 9, several
// times the kernel on small 16-bit problems; executing a kept plan costs a
// few). The plan is the first engine of cuDNN's heuristics that is
// deterministic (else any), accumulates in float32, keeps float32 off
// tensor cores (no TF32) and needs at most 1 GiB of workspace.
#pragma once

#include "cudnn_api.h"
#include "cudnn_plan.h"
#include "staging.h"

namespace volconv::cuda {

// Queues route's convolution on the handle's stream with cuDNN's packed
// NDHWC operands x (N, in..., C_in), w (C_out, K..., C_in/groups) and
// y (N, out_full..., C_out); the route says which of them is written.
// With `deterministic`, deterministic engines are taken where there are any.
// False, with nothing queued, when this cuDNN has no graph API or no engine
// for the problem: the caller then runs the legacy calls.
bool run_graph(const cudnn::Api& api, cudnn::Handle h, cuda_plan::CudaRoute route, DType dt, bool deterministic,
               int device, const cuda_plan::CudnnConv& c, const void* x, const void* w, const void* y,
               Staged& staged);

}  // namespace volconv::cuda
