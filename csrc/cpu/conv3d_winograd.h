// The Winograd F(2x2x2, 3x3x3) driver (conv3d_winograd.cpp), for plans with
// path winograd.
#pragma once

#include <cstdint>

#include "../core/backend.h"
#include "conv3d_plan.h"
#include "prepacked_weights.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {

// Runs the plan; false when an inf or NaN turned up (in the input, the
// transformed weights or a result) before the output was complete: the
// caller then runs the call on a direct path, which places them as torch.
// prepacked: transformed weights made ahead (volconv/packed_weights.h), used
// when they fit the plan; nullptr transforms them per call.
bool conv3d_winograd(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan,
                     const PrepackedWeights* prepacked = nullptr);

// 2x2x2 output tiles per work unit for MR-row kernels: its transformed input
// within u_bytes (the planner gives a quarter of L2), and small enough to
// give each of `threads` about four units.
std::int64_t winograd_unit_tiles(const ConvGeometry& g, int mr, std::int64_t u_bytes, int threads);

}  // namespace volconv::cpu
