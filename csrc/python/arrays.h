// Arrays as the bindings receive them: views of 5-D host memory or Metal
// buffers, in the dtype Python says (bfloat16 travels as uint16), and the
// storage dtype of the results they hand back. Shared by module.cpp and
// training.cpp, whose messages name their own op.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <stdexcept>
#include <string>

#include "volconv/volconv.h"

namespace volconv::python {

namespace nb = nanobind;

// Any strides, any device: host memory, or a Metal buffer (an mlx.array on
// the GPU exports its MTLBuffer and a byte offset through DLPack).
using StridedArray = nb::ndarray<nb::ro>;

inline ConstTensorView view_of(const StridedArray& a, DType dtype, const std::string& op, const char* what) {
  if (a.ndim() != 5)
    throw std::invalid_argument("[" + op + "] Expected the " + what + " to have 5 dimensions but got " +
                                std::to_string(a.ndim()) + ".");
  if (a.itemsize() != dtype_size(dtype))
    throw std::invalid_argument("[" + op + "] The " + what + " has " + std::to_string(a.itemsize()) +
                                "-byte elements, but " + dtype_name(dtype) + " needs " +
                                std::to_string(dtype_size(dtype)) + ".");
  ConstTensorView v;
  if (a.device_type() == nb::device::metal::value) {
    v.metal_buffer = a.data_handle();
    v.metal_offset = std::int64_t(a.byte_offset());
  } else if (a.device_type() == nb::device::cpu::value) {
    v.data = a.data();
  } else {
    throw std::invalid_argument("[" + op + "] Expected the " + what +
                                " in host memory or a Metal buffer but got an array on DLPack device type " +
                                std::to_string(a.device_type()) + ".");
  }
  v.dtype = dtype;
  for (int i = 0; i < 5; ++i) {
    v.shape[i] = std::int64_t(a.shape(i));
    v.strides[i] = std::int64_t(a.stride(i));
  }
  return v;
}

// The storage type numpy sees: bfloat16 travels as uint16 (numpy has no
// bfloat16); Python re-labels it.
inline nb::dlpack::dtype storage_dtype(DType dtype) {
  switch (dtype) {
    case DType::float16: return nb::dlpack::dtype{std::uint8_t(nb::dlpack::dtype_code::Float), 16, 1};
    case DType::bfloat16: return nb::dtype<std::uint16_t>();
    case DType::float32: return nb::dtype<float>();
    case DType::float64: break;
  }
  return nb::dtype<double>();
}

}  // namespace volconv::python
