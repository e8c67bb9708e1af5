// NaN and Inf weights in taps that lie in the padding. torch and MLX multiply
// the padding's zeros by every weight, so such a weight makes the output NaN
// (0 * NaN, 0 * Inf); the CPU kernels skip taps wholly in the padding and
// would drop it, differently per path, tile position and ISA.
#pragma once

#include "../core/backend.h"

namespace volconv::cpu {

// After a kernel wrote `call.output`: sets to NaN every output whose window
// puts a non-finite weight of its channel in the padding. Costs one scan of
// the weights when the call has padding, and nothing more unless a weight is
// NaN or infinite.
void propagate_nonfinite_weights(const detail::ConvCall& call);

// Whether the element of `dtype` at `p` (any alignment) is NaN or infinite.
bool is_nonfinite(DType dtype, const void* p);

// Whether any element of a view is NaN or infinite (one scan).
bool any_nonfinite(const ConstTensorView& view);

}  // namespace volconv::cpu
