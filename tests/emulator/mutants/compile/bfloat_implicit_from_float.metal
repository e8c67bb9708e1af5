// expect run: no viable conversion from 'float' to '(metal::)?bfloat'
// compiles in: address_spaces
// A float accumulator stored into a bfloat without a conversion (the bug:
// MSL 3.1 converts float to bfloat only explicitly, T(acc)).
#include "conv3d_common.h"

using namespace volconv;

template <typename T>
inline void store_sum(device T* output, float acc) {
  T value = acc;
  output[0] = value;
}

template void store_sum<bfloat>(device bfloat*, float);
