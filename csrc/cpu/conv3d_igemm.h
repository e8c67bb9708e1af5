// Drivers of the CPU backend's paths (see each .cpp): each executes a plan
// made by plan_conv3d (conv3d_plan.h) as given.
#pragma once

#include "../core/backend.h"
#include "conv3d_plan.h"
#include "prepacked_weights.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {

// The igemm family: igemm (f32, or bf16 pairs), fold-w, small-cin, packed-a.
// prepacked: weights packed ahead (volconv/packed_weights.h), used when they
// fit the plan; nullptr packs them per call.
void conv3d_igemm(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan,
                  const PrepackedWeights* prepacked = nullptr);

// The row drivers: depthwise (groups == C_in == C_out, f32 input with
// contiguous channels), one input channel (groups 1, f32 input; the
// depthwise row driver with the output channels in the lanes, f32-conv-cin1.h)
// and few output channels per group (f32-conv-small-cout.h).
void conv3d_rows(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan);

}  // namespace volconv::cpu
