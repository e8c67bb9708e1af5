// The depthwise kernels in __half storage (see depthwise_kernels.cuh).
#include "depthwise_kernels.cuh"

namespace volconv::cuda {

void launch_f16(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, float* partials, void* stream) {
  launch_typed<__half>(plan, args, partials, static_cast<cudaStream_t>(stream));
}

}  // namespace volconv::cuda
