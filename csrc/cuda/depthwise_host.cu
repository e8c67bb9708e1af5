// Running a problem on a CUDA queue: the route (cudnn_plan.h) sends depthwise
// problems to the kernels here and conv3d's other problems to cuDNN
// (cudnn_host.cu); what neither runs is refused naming the op. Views in
// device memory are used in place, views in host memory are copied in (and
// the result back).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/conv_problem.h"
#include "../core/op_geometry.h"
#include "../core/view_checks.h"
#include "depthwise_kernels.h"
#include "depthwise_plan.h"
#include "kernel_axes.h"
#include "cudnn_host.h"
#include "cudnn_plan.h"
#include "staging.h"
#include "streams.h"
#include "volconv/out_of_memory.h"

namespace volconv::cuda {
namespace {

[[noreturn]] void refuse(const char* op, const std::string& why) {
  throw std::invalid_argument(std::string("[") + op + "] " + why + ".");
}

void copy_strides(const Shape5& from, std::int64_t* to) {
  for (int i = 0; i < 5; ++i) to[i] = from[i];
}

}  // namespace

void run_problem(const detail::ConvProblem& problem, const char* op, int queue_id) {
  const detail::ConvProblemGeometry& g = problem.geometry;
  const cuda_plan::CudaRouteChoice route =
      cuda_plan::choose_route(problem.op, g, problem.weight_layout, problem.fold.active());
  if (route.route == cuda_plan::CudaRoute::refused) refuse(op, route.refused);
  const bool data = problem.op == detail::ConvOp::data;
  const ConstTensorView& second = data ? problem.weight : problem.output;
  const DType dt = problem.input.dtype;
  if (dt == DType::float64 || second.dtype != dt || problem.result.dtype != dt)
    refuse(op, std::string("The CUDA backend runs float32, float16 and bfloat16 with both operands of one dtype, "
                           "but got ") +
                   dtype_name(problem.input.dtype) + " and " + dtype_name(second.dtype));
  for (int i = 0; i < 3; ++i)
    if (g.in[i] >= (std::int64_t(1) << 31) || g.out[i] >= (std::int64_t(1) << 31))
      refuse(op, "a spatial size reaches 2^31");

  const QueueHandle q = queue(queue_id);
  const DeviceGuard on_device(q.device, op);
  const auto stream = static_cast<cudaStream_t>(q.stream);
  Staged staged(op, stream, q.device);
  if (route.route != cuda_plan::CudaRoute::depthwise) {
    run_cudnn(problem, route, op, q.device, staged);
    return;
  }

  DwArgs a;
  a.batch = g.batch;
  a.channels = g.out_channels;
  set_data_geometry(problem, a);
  a.x = staged.in(problem.input, "the input");
  copy_strides(problem.input.strides, a.xs);
  const TensorView& res = problem.result;
  const bool result_on_host = numel(res.shape) != 0 && !in_device_memory(res.data);
  // A host result is copied in first, so the bytes between its elements
  // survive the copy back (asked once: each pointer query is host time).
  void* result = result_on_host ? const_cast<void*>(staged.in(res, "the result")) : res.data;
  if (data) {
    a.w = staged.in(problem.weight, "the weight");
    copy_strides(problem.weight.strides, a.ws);
    a.y_out = result;
    copy_strides(res.strides, a.ys);
  } else {
    a.y_in = staged.in(problem.output, "the output gradient");
    copy_strides(problem.output.strides, a.ys);
    a.w_out = result;
    copy_strides(res.strides, a.ws);
  }

  bool index64 = cuda_plan::needs_index64(problem.input.shape, problem.input.strides) ||
                 cuda_plan::needs_index64(second.shape, second.strides) ||
                 cuda_plan::needs_index64(res.shape, res.strides);
  // Vector loads read the input and (forward) or the output gradient (weight
  // gradient) and write the forward result.
  const bool vectors = cuda_plan::vector_loads_fit(a.x, problem.input.shape, problem.input.strides) &&
                       (data ? cuda_plan::vector_loads_fit(result, res.shape, res.strides)
                             : cuda_plan::vector_loads_fit(a.y_in, problem.output.shape, problem.output.strides));
  // The tiled kernels access the input, and the output gradient or a 16-bit
  // result, in 16-byte chunks of channels.
  const int chunk = cuda_plan::tiled_chunk_elems(
      problem.op, int(dtype_size(dt)), {a.x, problem.input.shape, problem.input.strides},
      data ? cuda_plan::ChunkView{result, res.shape, res.strides}
           : cuda_plan::ChunkView{a.y_in, problem.output.shape, problem.output.strides});
  const cuda_plan::DepthwisePlan plan =
      cuda_plan::plan_depthwise(problem.op, g, index64, vectors, chunk, bulk_copies_available(), a.multiply_padding);
  float* partials = nullptr;
  if (plan.workspace_bytes > 0)
    partials = static_cast<float*>(staged.device_alloc(std::size_t(plan.workspace_bytes), "the partial sums"));
  check(cudaError_t(launch_depthwise(plan, a, elem_of(dt), partials, stream)), op, plan.name().c_str());

  if (result_on_host) staged.back(res, result);
}

void conv3d(const detail::ConvCall& call, int queue) {
  run_problem(detail::forward_problem(call), "conv3d", queue);
}

}  // namespace volconv::cuda
