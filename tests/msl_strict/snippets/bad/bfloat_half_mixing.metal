// Known-bad: bfloat and half in one operator. MSL 3.1, bfloat: bfloat has no
// usual arithmetic conversion with half; one side must be converted
// explicitly. Expected rule: bfloat-half-mixing.
#include <metal_stdlib>

using namespace metal;

kernel void k(device float* out [[buffer(0)]], const device bfloat* a [[buffer(1)]],
              const device half* b [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  const bfloat x = a[i];
  const half y = b[i];
  out[i] = x * y;
}
