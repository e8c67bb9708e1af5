// expect run: constexpr if is a C\+\+17 extension
// `if constexpr` in a kernel helper (the bug: MSL 3.1 is C++14 based; a
// plain `if` on the template parameter is what the kernels use).
#include "conv3d_common.h"

using namespace volconv;

template <int VEC>
inline float first_lane(vec<float, 4> x) {
  if constexpr (VEC == 4) return x[0] + x[1] + x[2] + x[3];
  return x[0];
}

template float first_lane<4>(vec<float, 4>);
