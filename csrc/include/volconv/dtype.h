// Element types volconv computes in, and MLX's promotion rule between them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace volconv {

enum class DType : std::uint8_t { float16 = 0, bfloat16 = 1, float32 = 2, float64 = 3 };

// Bytes per element.
std::size_t dtype_size(DType dtype);

// "float16", "bfloat16", "float32", "float64".
const char* dtype_name(DType dtype);

// The result type of an op on a and b, as MLX promotes: equal types stay,
// float16 with bfloat16 gives float32, otherwise the wider type wins.
constexpr DType promote_types(DType a, DType b) {
  if (a == b) return a;
  if (a == DType::float64 || b == DType::float64) return DType::float64;
  return DType::float32;
}

}  // namespace volconv
