#include "prepacked_weights.h"

#include <atomic>

#include "conv3d_plan.h"
#include "cpu_features.h"
#include "weight_packing.h"

namespace volconv::cpu {
namespace {
std::atomic<std::int64_t> g_call_packings{0};
}

void count_call_packing() { g_call_packings.fetch_add(1, std::memory_order_relaxed); }
std::int64_t testing::call_packing_count() { return g_call_packings.load(); }

PrepackedWeights prepack_conv3d(const detail::ConvCall& call) {
  const KernelTable& kt = active_kernels();
  const CpuPlan plan = plan_conv3d(call, kt, planning_caches());
  PrepackedWeights w;
  w.isa = kt.isa;
  // A winograd plan also holds the igemm panel of the same NR: calls whose
  // outputs fill the 2x2x2 tiles poorly (and calls meeting an inf or NaN)
  // run the igemm with the same handle.
  if (plan.path == CpuPath::winograd) {
    w.winograd = true;
    w.winograd_f32 = pack_winograd_f32(call.geometry, call.weight, plan.nr, w.winograd_finite);
  }
  switch (plan.path) {
    case CpuPath::winograd:
    case CpuPath::igemm:
    case CpuPath::fold_w:
    case CpuPath::small_cin:
    case CpuPath::packed_a: break;
    default: return w;  // direct, dwconv, few-cin, small-cout: nothing held
  }
  w.igemm = true;
  w.bf16_pairs = plan.bf16_pairs;
  w.nr = plan.nr;
  if (plan.bf16_pairs)
    w.bf16 = pack_igemm_bf16_pairs(call.geometry, call.weight, plan.nr);
  else
    w.f32 = pack_igemm_f32(call.geometry, call.weight, plan.nr);
  return w;
}

}  // namespace volconv::cpu
