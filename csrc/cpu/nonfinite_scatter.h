// Non-finite weights of a data problem whose zero taps are skipped
// (conv_transpose3d and conv3d's input gradient: torch scatters each real
// input element through the weight, so padding and inserted zeros never meet
// a NaN or an infinity). The stride phases run with those weight elements
// zeroed (their kernels multiply padding zeros); this adds each one's own
// products with the real input elements afterwards.
#pragma once

#include "../core/conv_problem.h"

namespace volconv::cpu {

// After the phases wrote `problem.result` with every non-finite weight
// element read as 0: adds input * weight for each such element and each real
// input element it meets. An output where an infinite input met an infinite
// weight (the zeroed product gave 0 * inf = NaN instead of inf) is summed
// again from all of its products.
void add_nonfinite_weight_terms(const detail::ConvProblem& problem);

// The other way (ZeroTaps::multiplied, input dilation 1), for a driver that
// skips the padding (dw-data): after it wrote `problem.result`, sets to NaN
// every output whose window puts a non-finite weight of its channel in the
// padding, as propagate_nonfinite_weights does for conv3d.
void propagate_nonfinite_weights(const detail::ConvProblem& problem);

}  // namespace volconv::cpu
