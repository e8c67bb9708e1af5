// Bindings for arrays in CUDA device memory (torch CUDA tensors, CuPy arrays
// through DLPack): the caller's memory is read and the result written in
// place, on the stream Python picked. The views carry device addresses, so
// only a GPU stream may run them (volconv/_cuda.py routes them here).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../core/gpu_backend.h"
#include "gil_release.h"
#include "volconv/conv_general.h"
#include "volconv/volconv.h"

namespace nb = nanobind;
using namespace volconv;

namespace {

// Host or CUDA memory; anything else is refused naming the op.
template <class View, class Array>
View device_view(const Array& a, DType dtype, const char* op, const char* what) {
  if (a.ndim() != 5)
    throw std::invalid_argument(std::string("[") + op + "] Expected the " + what + " to have 5 dimensions but got " +
                                std::to_string(a.ndim()) + ".");
  if (a.itemsize() != dtype_size(dtype))
    throw std::invalid_argument(std::string("[") + op + "] The " + what + " has " + std::to_string(a.itemsize()) +
                                "-byte elements, but " + dtype_name(dtype) + " needs " +
                                std::to_string(dtype_size(dtype)) + ".");
  if (a.device_type() != nb::device::cuda::value && a.device_type() != nb::device::cpu::value)
    throw std::invalid_argument(std::string("[") + op + "] Expected the " + what +
                                " in CUDA or host memory but got an array on DLPack device type " +
                                std::to_string(a.device_type()) + ".");
  View v;
  v.data = const_cast<decltype(v.data)>(static_cast<const void*>(a.data()));
  v.dtype = dtype;
  for (int i = 0; i < 5; ++i) {
    v.shape[i] = std::int64_t(a.shape(i));
    v.strides[i] = std::int64_t(a.stride(i));
  }
  return v;
}

using In = nb::ndarray<nb::ro>;
using Out = nb::ndarray<>;

Stream gpu_stream(const Stream& s, const char* op) {
  if (s.device.type != DeviceType::gpu)
    throw std::invalid_argument(std::string("[") + op +
                                "] Arrays in CUDA memory run on a GPU stream, but the stream given is on the cpu.");
  return s;
}

}  // namespace

void bind_cuda(nb::module_& m) {
  m.def("_conv3d_output_shape", &conv3d_output_shape, nb::arg("input_shape"), nb::arg("weight_shape"),
        nb::arg("params"));
  m.def("_cuda_conv3d", [](const In& x, DType xt, const In& w, DType wt, const Out& y, DType yt, const ConvParams& p,
                           const Stream& s) {
    const char* op = "conv3d";
    const auto a = device_view<ConstTensorView>(x, xt, op, "input");
    const auto b = device_view<ConstTensorView>(w, wt, op, "weight");
    const auto out = device_view<TensorView>(y, yt, op, "output");
    python::GilRelease release;
    conv3d(a, b, out, p, gpu_stream(s, op));
  });
  m.def("_cuda_conv3d_grad_input", [](const In& gy, DType gt, const In& w, DType wt, const Out& y, DType yt,
                                      const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_input";
    const auto a = device_view<ConstTensorView>(gy, gt, op, "grad_output");
    const auto b = device_view<ConstTensorView>(w, wt, op, "weight");
    const auto out = device_view<TensorView>(y, yt, op, "grad_input");
    python::GilRelease release;
    conv3d_grad_input(a, b, out, p, gpu_stream(s, op));
  });
  m.def("_cuda_conv3d_grad_weight", [](const In& x, DType xt, const In& gy, DType gt, const Out& y, DType yt,
                                       const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_weight";
    const auto a = device_view<ConstTensorView>(x, xt, op, "input");
    const auto b = device_view<ConstTensorView>(gy, gt, op, "grad_output");
    const auto out = device_view<TensorView>(y, yt, op, "grad_weight");
    python::GilRelease release;
    conv3d_grad_weight(a, b, out, p, gpu_stream(s, op));
  });
  m.def("_gpu_external_stream", [](int index, std::uintptr_t handle) {
    return detail::external_gpu_stream(Device{DeviceType::gpu, index}, handle);
  }, nb::arg("index"), nb::arg("handle"));
  m.def("_gpu_stream_wait", &detail::gpu_stream_wait, nb::arg("waiter"), nb::arg("waited"));
  m.def("_gpu_backend", [] {
    switch (detail::gpu_kind()) {
      case detail::GpuKind::metal: return "metal";
      case detail::GpuKind::cuda: return "cuda";
      case detail::GpuKind::none: break;
    }
    return "none";
  });
}
