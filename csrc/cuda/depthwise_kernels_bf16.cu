// The depthwise kernels in __nv_bfloat16 storage (see depthwise_kernels.cuh).
#include "depthwise_kernels.cuh"

namespace volconv::cuda {

void launch_bf16(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream) {
  launch_typed<__nv_bfloat16>(plan, args, partials, static_cast<cudaStream_t>(stream));
}

}  // namespace volconv::cuda
