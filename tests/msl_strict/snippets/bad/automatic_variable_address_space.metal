// Known-bad: an automatic (function-scope) variable declared in the device
// address space. MSL 3.1, Address Spaces (device): device is for buffers passed to a function
// and pointers/references into them, never for a variable a function declares.
// Expected rule: automatic-variable-address-space.
#include <metal_stdlib>

using namespace metal;

kernel void k(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  device float total = 0.0f;
  out[i] = total;
}
