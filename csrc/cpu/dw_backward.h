// The depthwise special paths of the general convolution (groups == C_in ==
// C_out): the data problems (conv_transpose3d, conv3d's input gradient,
// conv_general) on the depthwise row kernels, and the weight gradient with
// the channels in the lanes. The planner (conv3d_plan.cpp) decides when
// they run; these say whether they can.
#pragma once

#include <cstdint>

#include "../core/conv_problem.h"

namespace volconv::cpu {

struct KernelTable;

// A depthwise data problem, every dtype, any stride / input dilation.
bool dw_data_applies(const detail::ConvProblem& problem);
// Output rows run in blocks of h_block rows along H, od inside (CpuPlan::h_block);
// channel_block channels a kernel call (dw_data_channel_block).
void run_dw_data(const detail::ConvProblem& problem, const KernelTable& kt, std::int64_t h_block,
                 std::int64_t channel_block);
// Channels a kernel call of run_dw_data with a row kernel of kernel_nr
// channels: cpu::dwconv_block's where every W phase that reads the input
// runs the W-blocked tiles, else kernel_nr.
std::int64_t dw_data_channel_block(const detail::ConvProblem& problem, std::int64_t kernel_nr);

// A depthwise weight gradient whose input is not dilated along W; `block`
// channels a work item (ProblemPlan::channel_block).
bool dw_weight_grad_applies(const detail::ConvProblem& problem);
void run_dw_weight_grad(const detail::ConvProblem& problem, std::int64_t block);

}  // namespace volconv::cpu
