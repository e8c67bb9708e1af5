// The launcher: one entry point over the three storage types, whose kernels
// are compiled in their own files.
#include <cuda_runtime.h>

#include "depthwise_kernels.h"
#include "tma.cuh"

namespace volconv::cuda {

int launch_depthwise(const cuda_plan::DepthwisePlan& plan, const DwArgs& args, Elem elem, float* partials,
                     void* stream) {
  switch (elem) {
    case Elem::f32: launch_f32(plan, args, partials, stream); break;
    case Elem::f16: launch_f16(plan, args, partials, stream); break;
    case Elem::bf16: launch_bf16(plan, args, partials, stream); break;
  }
  return int(cudaGetLastError());
}

bool bulk_copies_available() { return tensor_map_encoder() != nullptr; }

}  // namespace volconv::cuda
