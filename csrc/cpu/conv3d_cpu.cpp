// The CPU backend's entry: picks the path for a validated call.
#include "../core/backend.h"

namespace volconv::cpu {

void conv3d_direct(const detail::ConvCall& call);

void conv3d(const detail::ConvCall& call) { conv3d_direct(call); }

}  // namespace volconv::cpu
