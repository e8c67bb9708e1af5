#include "volconv/dtype.h"

#include <stdexcept>
#include <string>

namespace volconv {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::float16:
    case DType::bfloat16: return 2;
    case DType::float32: return 4;
    case DType::float64: return 8;
  }
  throw std::invalid_argument("[conv3d] Unknown dtype code " + std::to_string(int(dtype)) + ".");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::float32: return "float32";
    case DType::float64: return "float64";
  }
  return "unknown";
}

}  // namespace volconv
