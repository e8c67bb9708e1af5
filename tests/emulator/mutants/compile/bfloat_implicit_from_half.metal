// expect run: no viable conversion from '(half|_Float16)'.* to '(metal::)?bfloat'
// A half value assigned to a bfloat (the bug: MSL 3.1 converts half to
// bfloat only explicitly).
#include "conv3d_common.h"

using namespace volconv;

inline bfloat to_bfloat(half h) {
  bfloat b = h;
  return b;
}
