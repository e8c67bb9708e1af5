// Known-good MSL 3.1 bfloat use (the bfloat rules): explicit conversions from float
// and half, implicit widening to float, arithmetic within one type.
// (An explicit half -> bfloat cast is valid MSL but clang's __bf16 refuses it:
// not modelled, not counted; it is therefore not exercised here.)
#include <metal_stdlib>

using namespace metal;

inline float widen(bfloat b, half h, float x) {
  const bfloat from_float = bfloat(x);
  const bfloat from_half = static_cast<bfloat>(float(h));
  const float sum = from_float + x;         // bfloat widens to float
  const half hh = h * h;                    // half stays half
  const float mixed = float(from_half) + float(hh) + b;
  return sum + mixed;
}

kernel void bfloat_kernel(device bfloat* out [[buffer(0)]], const device float* in [[buffer(1)]],
                          const device half* hin [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  out[i] = bfloat(widen(out[i], hin[i], in[i]));
}
