// Known-bad: a threadgroup pointer passed where a device pointer is expected.
// MSL 3.1, Address Spaces: pointers to different address spaces are distinct types and
// do not convert to each other. Expected rule: address-space-mismatch.
#include <metal_stdlib>

using namespace metal;

inline float sum2(const device float* values) { return values[0] + values[1]; }

kernel void k(device float* out [[buffer(0)]], threadgroup float* tile [[threadgroup(0)]],
              uint i [[thread_position_in_grid]]) {
  out[i] = sum2(tile);
}
