// Bit-exact conversions between float32 and the 16-bit float formats, done
// in integer arithmetic so they are portable (no _Float16 / __bf16 needed)
// and round to nearest even like the hardware instructions do.
#pragma once

#include <cstdint>
#include <cstring>

namespace volconv::detail {

inline std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_float(std::uint16_t b) { return bits_float(std::uint32_t(b) << 16); }

inline std::uint16_t float_to_bf16(float f) {
  std::uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return bits_float(sign);
  // Subnormal half: value = man * 2^-24, exact in float32.
  float v = float(man) * bits_float(0x33800000u);
  return bits_float(sign | float_bits(v));
}

inline std::uint16_t float_to_half(float f) {
  const std::uint32_t u = float_bits(f);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return std::uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // nan
  if (a >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds to inf
  if (a < 0x38800000u) {
    // Result is subnormal (or zero): scale so the 10 mantissa bits land in
    // the integer part, and let float addition do the even rounding.
    const float magic = bits_float(0x3f000000u);  // 0.5: adds 2^-1 in units of 2^-24 * 2^23
    float v = bits_float(a) + magic;
    return std::uint16_t(sign | std::uint16_t(float_bits(v) - float_bits(magic)));
  }
  std::uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - (112u << 23);
  return std::uint16_t(sign | (r >> 13));
}

}  // namespace volconv::detail
