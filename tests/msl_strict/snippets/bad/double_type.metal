// Known-bad: a double variable. MSL 3.1, Scalar Data Types: Metal does not support the
// double type. Expected rule: double.
#include <metal_stdlib>

using namespace metal;

kernel void k(device float* out [[buffer(0)]], const device float* in [[buffer(1)]],
              uint i [[thread_position_in_grid]]) {
  double acc = in[i];
  out[i] = float(acc);
}
