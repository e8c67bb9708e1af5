// NaN and inf in conv3d's grad_output, for its weight gradient. torch
// computes that gradient over the zero-padded input, so a non-finite
// grad_output element times a padding zero (0 * NaN, 0 * inf) makes every
// weight element of its tap NaN; the CPU kernels skip the padding and would
// leave those weights finite.
#pragma once

#include "../core/conv_problem.h"

namespace volconv::cpu {

// After a weight-gradient driver wrote `problem.result` (ZeroTaps::multiplied,
// input dilation 1, no flip): sets to NaN weight element (co, k, every input
// channel) when a non-finite grad_output element of channel co reads a zero
// (padding on an axis whose mode is zeros) at tap k. Costs one scan of
// grad_output when the problem reads padding zeros, and nothing more unless
// an element is NaN or infinite.
void propagate_nonfinite_grad_output(const detail::ConvProblem& problem);

}  // namespace volconv::cpu
