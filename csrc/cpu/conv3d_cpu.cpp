// The CPU backend's entry: plans the validated call (conv3d_plan.cpp says
// which path takes which call) and runs the plan's driver.
#include <memory>

#include "../core/backend.h"
#include "conv3d_igemm.h"
#include "conv3d_plan.h"
#include "conv3d_winograd.h"
#include "conv_problem_cpu.h"
#include "cpu_features.h"
#include "input_relayout.h"
#include "nonfinite_weights.h"

namespace volconv::cpu {

void conv3d_direct(const detail::ConvCall& call);

void conv3d_kernels(const detail::ConvCall& call_in, const PrepackedWeights* prepacked) {
  // Strided channels: one blocked copy, then the contiguous input's path.
  std::unique_ptr<unsigned char[]> relaid;
  detail::ConvCall call = call_in;
  if (needs_channel_relayout(call.input)) call.input = relayout_channels_last(call.input, relaid);
  const KernelTable& kt = active_kernels();  // once: a concurrent force_isa must not split plan and run
  CpuPlan plan = plan_conv3d(call, kt, planning_caches());
  // An inf or NaN: the direct plan places them as torch (see conv3d_winograd.h).
  if (plan.path == CpuPath::winograd) {
    if (conv3d_winograd(call, kt, plan, prepacked)) return;
    plan = plan_conv3d(call, kt, planning_caches(), false);
  }
  switch (plan.path) {
    case CpuPath::direct: conv3d_direct(call); break;
    case CpuPath::dwconv:
    case CpuPath::few_cin:
    case CpuPath::small_cout: conv3d_rows(call, kt, plan); break;
    default: conv3d_igemm(call, kt, plan, prepacked);
  }
}

// Core returns before an empty output reaches a backend.
void conv3d(const detail::ConvCall& call, const PrepackedWeights* prepacked) {
  conv3d_kernels(call, prepacked);
  // Every path skips taps that lie wholly in the padding; a non-finite
  // weight there must still reach the output as NaN (0 * NaN), as in torch.
  propagate_nonfinite_weights(call);
}

}  // namespace volconv::cpu
