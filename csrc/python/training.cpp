// Bindings of conv_general, conv_transpose3d and the gradients (see
// volconv/conv_general.h): each takes arrays already parsed in Python,
// allocates the result and calls the C++ op with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>

#include <stdexcept>
#include <string>

#include "../core/op_geometry.h"
#include "../core/output_blocks.h"
#include "../cpu/conv3d_plan.h"
#include "../cpu/wgrad_bf16_dot.h"
#include "volconv/conv_general.h"
#include "arrays.h"
#include "gil_release.h"
#include "volconv/volconv.h"

namespace nb = nanobind;
using namespace volconv;

using python::StridedArray;
using python::storage_dtype;
using python::view_of;

namespace {

// Allocates a contiguous result of `shape`, runs `op` on it without the GIL.
// A failed allocation is a MemoryError naming op_name and the bytes.
template <class Op>
nb::ndarray<nb::numpy> with_result(const char* op_name, const Shape5& shape, DType dtype, Op&& op) {
  const std::size_t bytes = std::size_t(numel(shape)) * dtype_size(dtype);
  void* data = nullptr;
  try {
    data = detail::output_blocks().take(bytes);
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(op_name, bytes, "the result");
  }
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
    return with_result("conv_general", conv_general_output_shape(a.shape, b.shape, p), promote_types(xt, wt),
                       [&](const TensorView& out) { conv_general(a, b, out, p, s); });
  });

  m.def("conv_transpose3d", [](const StridedArray& x, DType xt, const StridedArray& w, DType wt,
                               const ConvTransposeParams& p, const Stream& s) {
    const char* op = "conv_transpose3d";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(w, wt, op, "weight");
    return with_result("conv_transpose3d", conv_transpose3d_output_shape(a.shape, b.shape, p), promote_types(xt, wt),
                       [&](const TensorView& out) { conv_transpose3d(a, b, out, p, s); });
  });

  // The backward of conv3d's fused activation (volconv.mlx's Python route):
  // grad * act'(pre), in grad's dtype.
  m.def("_activation_backward", [](Activation act, const StridedArray& z, DType zt, const StridedArray& g,
                                   DType gt) {
    const char* op = "activation_backward";
    const ConstTensorView pre = view_of(z, zt, op, "pre"), grad = view_of(g, gt, op, "grad");
    return with_result(op, grad.shape, gt, [&](const TensorView& out) { activation_backward(act, pre, grad, out); });
  });

  // Its forward, act(pre) + residual, in pre's dtype (tests).
  m.def("_activation_forward", [](Activation act, const StridedArray& z, DType zt,
                                  const std::optional<StridedArray>& r, DType rt) {
    const char* op = "activation_forward";
    const ConstTensorView pre = view_of(z, zt, op, "pre");
    std::optional<ConstTensorView> residual;
    if (r) residual = view_of(*r, rt, op, "residual");
    return with_result(op, pre.shape, zt, [&](const TensorView& out) { activation_forward(act, pre, residual, out); });
  }, nb::arg("activation"), nb::arg("pre"), nb::arg("pre_dtype"), nb::arg("residual").none(), nb::arg("residual_dtype"));

  m.def("conv3d_grad_input", [](const StridedArray& gy, DType gt, const StridedArray& w, DType wt,
                                const Shape5& input_shape, const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_input";
    const ConstTensorView a = view_of(gy, gt, op, "grad_output"), b = view_of(w, wt, op, "weight");
    return with_result("conv3d_grad_input", conv3d_grad_input_output_shape(a.shape, b.shape, input_shape, p), promote_types(gt, wt),
                       [&](const TensorView& out) { conv3d_grad_input(a, b, out, p, s); });
  });

  m.def("conv3d_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                 const Shape5& weight_shape, const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    return with_result("conv3d_grad_weight", conv3d_grad_weight_output_shape(a.shape, b.shape, weight_shape, p), promote_types(xt, gt),
                       [&](const TensorView& out) { conv3d_grad_weight(a, b, out, p, s); });
  });

  m.def("conv_transpose3d_grad_input", [](const StridedArray& gy, DType gt, const StridedArray& w, DType wt,
                                          const Shape5& input_shape, const ConvTransposeParams& p,
                                          const Stream& s) {
    const char* op = "conv_transpose3d_grad_input";
    const ConstTensorView a = view_of(gy, gt, op, "grad_output"), b = view_of(w, wt, op, "weight");
    conv_transpose3d_output_shape(input_shape, b.shape, p);  // validates input_shape before allocating
    return with_result("conv_transpose3d_grad_input", input_shape, promote_types(gt, wt),
                       [&](const TensorView& out) { conv_transpose3d_grad_input(a, b, out, p, s); });
  });

  m.def("conv_transpose3d_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                           const Shape5& weight_shape, const ConvTransposeParams& p,
                                           const Stream& s) {
    const char* op = "conv_transpose3d_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    conv_transpose3d_output_shape(a.shape, weight_shape, p);  // validates weight_shape before allocating
    return with_result("conv_transpose3d_grad_weight", weight_shape, promote_types(xt, gt),
                       [&](const TensorView& out) { conv_transpose3d_grad_weight(a, b, out, p, s); });
  });

  m.def("conv_general_grad_weight", [](const StridedArray& x, DType xt, const StridedArray& gy, DType gt,
                                       const Shape5& weight_shape, const ConvGeneralParams& p, const Stream& s) {
    const char* op = "conv_general_grad_weight";
    const ConstTensorView a = view_of(x, xt, op, "input"), b = view_of(gy, gt, op, "grad_output");
    conv_general_output_shape(a.shape, weight_shape, p);
    return with_result("conv_general_grad_weight", weight_shape, promote_types(xt, gt),
                       [&](const TensorView& out) { conv_general_grad_weight(a, b, out, p, s); });
  });

  // Test-only: the CPU plan of conv3d_grad_input / conv3d_grad_weight
  // (conv3d's params) or conv_transpose3d, lowered as the op lowers it.
  const auto plan_dict = [](const cpu::ProblemPlan& plan) {
    nb::dict d;
    d["path"] = cpu::problem_path_name(plan.path);
    d["kernel"] = plan.kernel;
    d["name"] = plan.describe();
    d["channel_block"] = plan.channel_block;
    return d;
  };
  m.def("_cpu_plan_problem", [plan_dict](const std::string& op, const StridedArray& a, DType at,
                                         const StridedArray& b, DType bt, const Shape5& shape, const ConvParams& p) {
    const ConstTensorView va = view_of(a, at, op.c_str(), "a"), vb = view_of(b, bt, op.c_str(), "b");
    if (op == "conv3d_grad_input")
      return plan_dict(cpu::testing::plan_problem(
          detail::ConvOp::data, detail::lower_conv3d_grad_input(op.c_str(), va.shape, vb.shape, shape, p).geometry,
          va, vb));
    if (op == "conv3d_grad_weight")
      return plan_dict(cpu::testing::plan_problem(
          detail::ConvOp::weight_grad,
          detail::lower_conv3d_grad_weight(op.c_str(), va.shape, vb.shape, shape, p).geometry, va, vb));
    throw std::invalid_argument("[_cpu_plan_problem] Unknown op " + op + ".");
  }, nb::arg("op"), nb::arg("a"), nb::arg("a_dtype"), nb::arg("b"), nb::arg("b_dtype"), nb::arg("shape"),
     nb::arg("params"));
  // Test-only: the inner loops the last gathered or row-path weight gradient ran.
  m.def("_cpu_last_wgrad_kernel", [] { return std::string(cpu::testing::last_wgrad_kernel()); });
  // Test-only: which dot GEMM bf16 weight gradients take ("auto": as measured,
  // "vdpbf16ps": wherever the set is avx512bf16, "emulated": the portable one).
  m.def("_cpu_wgrad_bf16_dot_mode", [](const std::string& mode) {
    using M = cpu::testing::Bf16DotMode;
    if (mode != "auto" && mode != "vdpbf16ps" && mode != "emulated")
      throw std::invalid_argument("[_cpu_wgrad_bf16_dot_mode] Expected auto, vdpbf16ps or emulated, got " + mode + ".");
    cpu::testing::set_bf16_dot_mode(mode == "auto" ? M::automatic : mode == "emulated" ? M::emulated : M::hardware);
  }, nb::arg("mode"));
  m.def("_cpu_wgrad_bf16_dot_speed_ratio", &cpu::bf16_dot_speed_ratio);
  // Test-only: c[:m, :n] += the bf16 dot GEMM of pair words g (pairs x ldg)
  // and x (pairs x ldx) (wgrad_bf16_dot.h); False where the active kernel
  // set has none.
  using PairWords = nb::ndarray<const std::uint32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
  m.def("_cpu_wgrad_bf16_dot", [](PairWords g, PairWords x,
                                  nb::ndarray<float, nb::ndim<2>, nb::c_contig, nb::device::cpu> c, std::int64_t m,
                                  std::int64_t n) {
    const cpu::WgradBf16Kernel* k = cpu::wgrad_bf16_dot_active();
    if (k == nullptr) return false;
    const auto dim = [](const auto& a, int i) { return std::int64_t(a.shape(i)); };
    if (dim(g, 0) != dim(x, 0) || m < 0 || n < 0 || m > dim(g, 1) || n > dim(x, 1) || m > dim(c, 0) ||
        n > dim(c, 1))
      throw std::invalid_argument("[_cpu_wgrad_bf16_dot] The operands' shapes do not fit m and n.");
    k->gemm(dim(g, 0), m, n, g.data(), dim(g, 1), x.data(), dim(x, 1), c.data(), dim(c, 1));
    return true;
  }, nb::arg("g"), nb::arg("x"), nb::arg("c"), nb::arg("m"), nb::arg("n"));
  m.def("_cpu_plan_problem", [plan_dict](const std::string& op, const StridedArray& a, DType at,
                                         const StridedArray& b, DType bt, const ConvTransposeParams& p) {
    if (op != "conv_transpose3d") throw std::invalid_argument("[_cpu_plan_problem] Unknown op " + op + ".");
    const ConstTensorView va = view_of(a, at, op.c_str(), "a"), vb = view_of(b, bt, op.c_str(), "b");
    return plan_dict(cpu::testing::plan_problem(
        detail::ConvOp::data, detail::lower_conv_transpose3d(op.c_str(), va.shape, vb.shape, p).geometry, va, vb));
  }, nb::arg("op"), nb::arg("a"), nb::arg("a_dtype"), nb::arg("b"), nb::arg("b_dtype"), nb::arg("params"));
}
