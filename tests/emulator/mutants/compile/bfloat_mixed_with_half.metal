// expect run: overload resolution selected deleted operator '\*'
// compiles in: address_spaces
// A bfloat input multiplied by a half weight in one operator (the bug: MSL
// 3.1 has no common type for bfloat and half; convert one to float first).
#include "conv3d_common.h"

using namespace volconv;

inline float scaled(bfloat x, half w) { return x * w; }
