// Arrays in CUDA memory from any DLPack producer (JAX, and others volconv
// has no allocator of): the view of an imported array, and the result's
// device memory handed back through DLPack. torch tensors and CuPy arrays
// skip this (volconv/_cuda.py reads their pointers directly, and allocates
// their results with their own allocators).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "../core/gpu_backend.h"
#include "volconv/device.h"
#include "volconv/dtype.h"
#include "volconv/tensor.h"

namespace nb = nanobind;
using namespace volconv;

namespace {

using View = nb::ndarray<nb::ro>;

// A DLPack dtype's name as numpy spells it ("float32", "bfloat16", "int8",
// ...): Python takes the names volconv has as its DTypes and refuses the
// rest naming them.
std::string dlpack_dtype_name(const nb::dlpack::dtype& t) {
  using Code = nb::dlpack::dtype_code;
  const char* kind = "unknown";
  switch (Code(t.code)) {
    case Code::Int: kind = "int"; break;
    case Code::UInt: kind = "uint"; break;
    case Code::Float: kind = "float"; break;
    case Code::Bfloat: kind = "bfloat"; break;
    case Code::Complex: kind = "complex"; break;
    case Code::Bool: return "bool";
    default: break;
  }
  std::string name = kind + std::to_string(t.bits);
  return t.lanes == 1 ? name : name + "x" + std::to_string(t.lanes);
}

// What the producer's `__dlpack__` gave, as the CUDA route reads it:
// (a holder that keeps the producer's memory alive while it is referenced;
// the address of element 0; shape; strides in elements; dtype name).
std::tuple<nb::capsule, std::uintptr_t, std::vector<std::int64_t>, std::vector<std::int64_t>, std::string> view_of(
    const View& a, const std::string& op, const std::string& what) {
  if (a.device_type() != nb::device::cuda::value)
    throw std::invalid_argument("[" + op + "] Expected the " + what +
                                " to be in CUDA memory, as its __dlpack_device__ said, but its DLPack export is "
                                "on device type " +
                                std::to_string(a.device_type()) + ".");
  std::vector<std::int64_t> shape, strides;
  for (std::size_t i = 0; i < a.ndim(); ++i) {
    shape.push_back(std::int64_t(a.shape(i)));
    strides.push_back(std::int64_t(a.stride(i)));
  }
  // The import itself, held (nanobind returns an imported array to Python
  // only as a copy): its last reference releases the producer's export.
  nb::capsule holder(new View(a), [](void* p) noexcept { delete static_cast<View*>(p); });
  return {holder, reinterpret_cast<std::uintptr_t>(a.data()), shape, strides, dlpack_dtype_name(a.dtype())};
}

nb::dlpack::dtype dlpack_dtype(DType t) {
  switch (t) {
    case DType::float16: return {std::uint8_t(nb::dlpack::dtype_code::Float), 16, 1};
    case DType::bfloat16: return {std::uint8_t(nb::dlpack::dtype_code::Bfloat), 16, 1};
    case DType::float32: return {std::uint8_t(nb::dlpack::dtype_code::Float), 32, 1};
    case DType::float64: return {std::uint8_t(nb::dlpack::dtype_code::Float), 64, 1};
  }
  throw std::invalid_argument("[volconv] no DLPack dtype for this dtype");
}

// A C-contiguous result of `shape` on GPU `device`, in memory of its own that
// the returned array frees when the last holder (the consumer's import
// included) lets go: (the array, which has __dlpack__ and
// __dlpack_device__; the address of element 0; its strides in elements).
// The shape is checked here because it is allocated before the op checks it
// (a gradient's shape comes from the caller).
std::tuple<nb::ndarray<nb::array_api>, std::uintptr_t, Shape5> result(int device, const Shape5& shape, DType dtype) {
  std::size_t count = 1;
  for (std::int64_t n : shape) {
    if (n < 0) throw std::invalid_argument("[volconv] a result shape is negative");
    if (n != 0 && count > SIZE_MAX / std::size_t(n) / 8) throw std::invalid_argument("[volconv] the result is too large");
    count *= std::size_t(n);
  }
  const Device where{DeviceType::gpu, device};
  void* p = detail::gpu_alloc(where, count * dtype_size(dtype));
  struct Owned {
    Device device;
    void* p;
  };
  nb::capsule owner(new Owned{where, p}, [](void* o) noexcept {
    auto* owned = static_cast<Owned*>(o);
    detail::gpu_free(owned->device, owned->p);
    delete owned;
  });
  std::vector<std::size_t> dims(shape.begin(), shape.end());
  nb::ndarray<nb::array_api> array(p, dims.size(), dims.data(), owner, nullptr, dlpack_dtype(dtype), nb::device::cuda::value,
                      device);
  return {array, reinterpret_cast<std::uintptr_t>(p), contiguous_strides(shape)};
}

}  // namespace

void bind_dlpack_cuda(nb::module_& m) {
  m.def("_dlpack_view", &view_of, nb::arg("capsule"), nb::arg("op"), nb::arg("what"));
  m.def("_dlpack_result", &result, nb::arg("device"), nb::arg("shape"), nb::arg("dtype"));
  m.def("_gpu_stream_handle", &detail::gpu_stream_handle, nb::arg("stream"));
}
