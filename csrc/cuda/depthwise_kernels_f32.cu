// The depthwise kernels in float storage (see depthwise_kernels.cuh).
#include "depthwise_kernels.cuh"

namespace volconv::cuda {

void launch_f32(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream) {
  launch_typed<float>(plan, args, partials, static_cast<cudaStream_t>(stream));
}

}  // namespace volconv::cuda
