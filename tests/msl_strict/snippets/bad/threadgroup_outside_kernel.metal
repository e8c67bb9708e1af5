// Known-bad: a threadgroup variable declared in a helper function. MSL 3.1,
// Address Spaces (threadgroup): threadgroup variables are declared only in a kernel function's
// scope (or passed in as [[threadgroup(n)]] arguments).
// Expected rule: threadgroup-outside-kernel.
#include <metal_stdlib>

using namespace metal;

inline float helper(uint i) {
  threadgroup float scratch[32];
  scratch[i % 32] = 1.0f;
  return scratch[0];
}

kernel void k(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = helper(i);
}
