// Known-bad: a float converted implicitly to bfloat. MSL 3.1, bfloat: float
// and half convert to bfloat only explicitly (bfloat(x), static_cast).
// Expected rule: bfloat-implicit-conversion.
#include <metal_stdlib>

using namespace metal;

kernel void k(device bfloat* out [[buffer(0)]], const device float* in [[buffer(1)]],
              uint i [[thread_position_in_grid]]) {
  const float scaled = in[i] * 0.5f;
  out[i] = scaled;
}
