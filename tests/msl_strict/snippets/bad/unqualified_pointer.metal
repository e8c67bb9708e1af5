// Known-bad: a pointer parameter that names no address space. MSL 3.1, Address Spaces:
// every pointer or reference is declared in an address space; an unqualified
// one means `thread`, so a helper written for device data silently takes a
// thread pointer. OpenCL C++ accepts it (it is __private there): only the
// lint sees it. Expected rule: unqualified-pointer.
#include <metal_stdlib>

using namespace metal;

inline float first(const float* values) { return values[0]; }

kernel void k(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  float local[2] = {1.0f, 2.0f};
  out[i] = first(local);
}
