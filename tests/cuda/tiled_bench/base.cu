// The base commit's kernels and planner (extracted by run.sh into base_src/),
// renamed, as the baseline.
#define volconv volconv_base
#include "base_src/cuda/depthwise_plan.cpp"
#include "base_src/cuda/depthwise_kernels.cuh"
#undef volconv
#include "common.h"

static float* base_ws = nullptr;
static std::int64_t base_ws_bytes = 0;

std::string base_run(int op, const Prob& pr, int elem, const void* args, cudaStream_t s) {
  using namespace volconv_base;
  detail::ConvProblemGeometry g;
  g.batch = pr.n;
  g.in = g.out = {pr.d, pr.h, pr.w};
  g.kernel = {3, 3, 3};
  g.in_channels = g.out_channels = g.groups = pr.c;
  g.padding_lo = {1, 1, 1};
  const auto p = cuda_plan::plan_depthwise(op == 0 ? detail::ConvOp::data : detail::ConvOp::weight_grad, g, false, true,
                                           elem == 0 ? 4 : 8);
  if (p.workspace_bytes > base_ws_bytes) {
    cudaFree(base_ws);
    cudaMalloc(&base_ws, p.workspace_bytes);
    base_ws_bytes = p.workspace_bytes;
  }
  cuda::DwArgs a;
  memcpy(&a, args, sizeof a);
  if (elem == 0) cuda::launch_typed<float>(p, a, base_ws, s);
  if (elem == 1) cuda::launch_typed<__nv_bfloat16>(p, a, base_ws, s);
  if (elem == 2) cuda::launch_typed<__half>(p, a, base_ws, s);
  return p.name();
}
