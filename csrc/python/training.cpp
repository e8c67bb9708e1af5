// Bindings of conv_general, conv_transpose3d and the gradients (see
// volconv/conv_general.h): each takes arrays already parsed in Python,
// allocates the result and calls the C++ op with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>

#include <stdexcept>
#include <string>

#include "../core/output_blocks.h"
#include "volconv/conv_general.h"
#include "gil_release.h"
#include "volconv/volconv.h"

namespace nb = nanobind;
using namespace volconv;

namespace {

using StridedArray = nb::ndarray<nb::ro>;

// As module.cpp's view_of, naming the op in messages.
ConstTensorView view_of(const StridedArray& a, DType dtype, const std::string& op, const char* what) {
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

nb::dlpack::dtype storage_dtype(DType dtype) {
  switch (dtype) {
    case DType::float16: return nb::dlpack::dtype{std::uint8_t(nb::dlpack::dtype_code::Float), 16, 1};
    case DType::bfloat16: return nb::dtype<std::uint16_t>();
    case DType::float32: return nb::dtype<float>();
    case DType::float64: break;
  }
  return nb::dtype<double>();
}

// Allocates a contiguous result of `shape`, runs `op` on it without the GIL.
template <class Op>
nb::ndarray<nb::numpy> with_result(const Shape5& shape, DType dtype, Op&& op) {
  void* data = detail::output_blocks().take(std::size_t(numel(shape)) * dtype_size(dtype));
  nb::capsule owner(data, [](void* p) noexcept { detail::output_blocks().give(p); });
  const TensorView out = TensorView::contiguous(data, dtype, shape);
  {
    python::GilRelease release;
    op(out);
  }
  std::size_t s[5];
  for (int i = 0; i < 5; ++i) s[i] = std::size_t(shape[i]);
  return nb::ndarray<nb::numpy>(data, 5, s, owner, nullptr, storage_dtype(dtype));
}

}  // namespace

void bind_training(nb::module_& m) {
  nb::class_<ConvGeneralParams>(m, "ConvGeneralParams")
      .def(nb::init<>())
      .def_rw("stride", &ConvGeneralParams::stride)
      .def_rw("padding_lo", &ConvGeneralParams::padding_lo)
      .def_rw("padding_hi", &ConvGeneralParams::padding_hi)
      .def_rw("kernel_dilation", &ConvGeneralParams::kernel_dilation)
      .def_rw("input_dilation", &ConvGeneralParams::input_dilation)
      .def_rw("groups", &ConvGeneralParams::groups)
      .def_rw("flip", &ConvGeneralParams::flip);

  nb::class_<ConvTransposeParams>(m, "ConvTransposeParams")
      .def(nb::init<>())
      .def_rw("stride", &ConvTransposeParams::stride)
      .def_rw("padding_lo", &ConvTransposeParams::padding_lo)
      .def_rw("padding_hi", &ConvTransposeParams::padding_hi)
      .def_rw("dilation", &ConvTransposeParams::dilation)
      .def_rw("output_padding", &ConvTransposeParams::output_padding)
      .def_rw("groups", &ConvTransposeParams::groups);

  m.def("conv_general", [](const StridedArray& x, DType xt, const StridedArray& w, DType wt,
                           const ConvGeneralParams& p, const Stream& s) {
    const char* op = "conv_general";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(w, wt, op, "weight");
    return with_result(conv_general_output_shape(a.shape, b.shape, p), promote_types(xt, wt),
                       [&](const TensorView& out) { conv_general(a, b, out, p, s); });
  });

  m.def("conv_transpose3d", [](const StridedArray& x, DType xt, const StridedArray& w, DType wt,
                               const ConvTransposeParams& p, const Stream& s) {
    const char* op = "conv_transpose3d";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(w, wt, op, "weight");
    return with_result(conv_transpose3d_output_shape(a.shape, b.shape, p), promote_types(xt, wt),
                       [&](const TensorView& out) { conv_transpose3d(a, b, out, p, s); });
  });

  m.def("conv3d_grad_input", [](const StridedArray& gy, DType gt, const StridedArray& w, DType wt,
                                const Shape5& input_shape, const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_input";
    const ConstTensorView a = view_of(gy, gt, op, "grad_output"), b = view_of(w, wt, op, "weight");
    return with_result(conv3d_grad_input_output_shape(a.shape, b.shape, input_shape, p), promote_types(gt, wt),
                       [&](const TensorView& out) { conv3d_grad_input(a, b, out, p, s); });
  });

  m.def("conv3d_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                 const Shape5& weight_shape, const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    return with_result(conv3d_grad_weight_output_shape(a.shape, b.shape, weight_shape, p), promote_types(xt, gt),
                       [&](const TensorView& out) { conv3d_grad_weight(a, b, out, p, s); });
  });

  m.def("conv_transpose3d_grad_input", [](const StridedArray& gy, DType gt, const StridedArray& w, DType wt,
                                          const Shape5& input_shape, const ConvTransposeParams& p,
                                          const Stream& s) {
    const char* op = "conv_transpose3d_grad_input";
    const ConstTensorView a = view_of(gy, gt, op, "grad_output"), b = view_of(w, wt, op, "weight");
    conv_transpose3d_output_shape(input_shape, b.shape, p);  // validates input_shape before allocating
    return with_result(input_shape, promote_types(gt, wt),
                       [&](const TensorView& out) { conv_transpose3d_grad_input(a, b, out, p, s); });
  });

  m.def("conv_transpose3d_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                           const Shape5& weight_shape, const ConvTransposeParams& p,
                                           const Stream& s) {
    const char* op = "conv_transpose3d_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    conv_transpose3d_output_shape(a.shape, weight_shape, p);  // validates weight_shape before allocating
    return with_result(weight_shape, promote_types(xt, gt),
                       [&](const TensorView& out) { conv_transpose3d_grad_weight(a, b, out, p, s); });
  });

  m.def("conv_general_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                       const Shape5& weight_shape, const ConvGeneralParams& p, const Stream& s) {
    const char* op = "conv_general_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    conv_general_output_shape(a.shape, weight_shape, p);
    return with_result(weight_shape, promote_types(xt, gt),
                       [&](const TensorView& out) { conv_general_grad_weight(a, b, out, p, s); });
  });
}
