// Running a depthwise problem on a CUDA queue: what the kernels cannot do is
// refused naming the op; views in device memory are used in place, views in
// host memory are copied in (and the result back); then the plan's kernels.
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
#include "streams.h"
#include "volconv/out_of_memory.h"

namespace volconv::cuda {
namespace {

[[noreturn]] void refuse(const char* op, const std::string& why) {
  throw std::invalid_argument(std::string("[") + op + "] " + why + ".");
}

bool in_device_memory(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

// A view's memory as the kernels see it: the caller's device memory, or a
// device copy of the bytes a host view spans (same strides).
struct Staged {
  const char* op;
  cudaStream_t stream;
  std::vector<void*> allocations;
  ~Staged() {
    for (void* p : allocations) cudaFreeAsync(p, stream);
  }

  void* device_alloc(std::size_t bytes, const char* what) {
    void* p = nullptr;
    const cudaError_t err = cudaMallocAsync(&p, bytes, stream);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw OutOfMemory(op, bytes, what);
    }
    check(err, op, "cudaMallocAsync");
    allocations.push_back(p);
    return p;
  }

  // Device address of element 0 of `v`; copies a host view's span in.
  const void* in(const ConstTensorView& v, const char* what) {
    if (numel(v.shape) == 0 || in_device_memory(v.data)) return v.data;  // an empty view is never read
    const detail::ByteRange r = detail::byte_range(v.data, v.dtype, v.shape, v.strides);
    char* d = static_cast<char*>(device_alloc(r.hi - r.lo + 1, what));
    check(cudaMemcpyAsync(d, reinterpret_cast<const void*>(r.lo), r.hi - r.lo + 1, cudaMemcpyHostToDevice, stream),
          op, "the copy to the GPU");
    return d + (reinterpret_cast<std::uintptr_t>(v.data) - r.lo);
  }
};

Elem elem_of(DType d) {
  return d == DType::float16 ? Elem::f16 : d == DType::bfloat16 ? Elem::bf16 : Elem::f32;
}

void copy_strides(const Shape5& from, std::int64_t* to) {
  for (int i = 0; i < 5; ++i) to[i] = from[i];
}

}  // namespace

void run_problem(const detail::ConvProblem& problem, const char* op, int queue_id) {
  const detail::ConvProblemGeometry& g = problem.geometry;
  const std::string why = cuda_plan::unsupported_reason(g);
  if (!why.empty()) refuse(op, why + "; run it on the cpu (stream=volconv.cpu)");
  if (problem.fold.active())
    refuse(op, "The CUDA backend pads with zeros only for now; run it on the cpu (stream=volconv.cpu)");
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
  Staged staged{op, stream, {}};

  DwArgs a;
  a.batch = g.batch;
  a.channels = g.out_channels;
  for (int i = 0; i < 3; ++i) {
    a.in[i] = int(g.in[i]);
    a.out[i] = int(g.out[i]);
    a.kernel[i] = int(g.kernel[i]);
    a.stride[i] = int(g.stride[i]);
    a.pad[i] = int(g.padding_lo[i]);
    a.kdil[i] = int(g.kernel_dilation[i]);
    a.idil[i] = int(g.input_dilation[i]);
  }
  a.flip = g.flip;
  a.x = staged.in(problem.input, "the input");
  copy_strides(problem.input.strides, a.xs);
  const TensorView& res = problem.result;
  const bool result_on_host = numel(res.shape) != 0 && !in_device_memory(res.data);
  // A host result is copied in first, so the bytes between its elements
  // survive the copy back.
  void* result = const_cast<void*>(staged.in(res, "the result"));
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
  // The tiled kernels copy the input in 16-byte chunks of channels.
  const int chunk = 16 / int(dtype_size(dt));
  const bool chunks = cuda_plan::vector_loads_fit(a.x, problem.input.shape, problem.input.strides, chunk);
  const cuda_plan::DepthwisePlan plan =
      cuda_plan::plan_depthwise(problem.op, g, index64, vectors, chunks ? chunk : 0);
  float* partials = nullptr;
  if (plan.workspace_bytes > 0)
    partials = static_cast<float*>(staged.device_alloc(std::size_t(plan.workspace_bytes), "the partial sums"));
  check(cudaError_t(launch_depthwise(plan, a, elem_of(dt), partials, stream)), op, plan.name().c_str());

  if (result_on_host) {
    const detail::ByteRange r = detail::byte_range(res.data, res.dtype, res.shape, res.strides);
    const char* d = static_cast<const char*>(result) - (reinterpret_cast<std::uintptr_t>(res.data) - r.lo);
    check(cudaMemcpyAsync(reinterpret_cast<void*>(r.lo), d, r.hi - r.lo + 1, cudaMemcpyDeviceToHost, stream), op,
          "the copy from the GPU");
    check(cudaStreamSynchronize(stream), op, "cudaStreamSynchronize");
  }
}

void conv3d(const detail::ConvCall& call, int queue) {
  run_problem(detail::forward_problem(call), "conv3d", queue);
}

}  // namespace volconv::cuda
