// Drivers of the CPU backend's paths (see each .cpp). Each returns the name
// of the path and kernel it ran, for tests.
#pragma once

#include <string>

#include "../core/backend.h"
#include "ukernels/ukernel.h"

namespace volconv::cpu {

enum class IgemmMode {
  direct_f32,   // f32 input with contiguous channels, read in place
  direct_bf16,  // bf16 x bf16 on vdpbf16ps, even C_in per group
  fold_w,       // f32, groups 1, small C_in: the W window x C_in is one contiguous K run per (kd, kh)
  small_cin,    // C_in per group <= 4: taps folded into K, A gathered k-major per tile
  packed_a,     // anything else: rows gathered and converted per tile
};

std::string conv3d_igemm(const detail::ConvCall& call, const KernelTable& kt, IgemmMode mode);

// Records how many chunks of taps the running call splits K into (see
// last_k_chunks in volconv/cpu.h); conv3d resets it to 1 for every call.
void note_k_chunks(std::int64_t chunks);

// Depthwise (groups == C_in == C_out), f32 input with contiguous channels.
std::string conv3d_dwconv(const detail::ConvCall& call, const KernelTable& kt);

// One input channel, groups 1, f32 input: the depthwise row driver with the
// output channels in the lanes (f32-conv-cin1.h).
std::string conv3d_cin1(const detail::ConvCall& call, const KernelTable& kt);

}  // namespace volconv::cpu
