// Bindings for arrays in CUDA device memory (torch CUDA tensors, CuPy
// arrays): the caller's memory is read and the result written in place, on
// the stream Python picked. The views carry device addresses, so
// only a GPU stream may run them (volconv/_cuda.py routes them here).
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

#include "../core/gpu_backend.h"
#include "../core/conv_problem.h"
#include "../cuda/cudnn_loader.h"
#include "../cuda/depthwise_plan.h"
#include "gil_release.h"
#include "volconv/conv_general.h"
#include "volconv/volconv.h"

namespace nb = nanobind;
using namespace volconv;

namespace {

// An array in CUDA memory as Python describes it: the address of element 0,
// the shape and the strides in elements (torch's data_ptr() / stride(),
// CuPy's data.ptr / strides). Python checked the dtype and the dimensions;
// the core checks the rest. (Not DLPack: torch's __dlpack__ records and waits
// on an event per tensor, a cost paid on every call.)
using Raw = std::tuple<std::uintptr_t, Shape5, Shape5>;

template <class View>
View view_of(const Raw& a, DType dtype) {
  View v;
  v.data = reinterpret_cast<decltype(v.data)>(std::get<0>(a));
  v.dtype = dtype;
  v.shape = std::get<1>(a);
  v.strides = std::get<2>(a);
  return v;
}

Stream gpu_stream(const Stream& s, const char* op) {
  if (s.device.type != DeviceType::gpu)
    throw std::invalid_argument(std::string("[") + op +
                                "] Arrays in CUDA memory run on a GPU stream, but the stream given is on the cpu.");
  return s;
}

// Binds `name` to op(a, b, result, params, stream) for arrays in CUDA memory.
template <class Params>
void def_two_operand(nb::module_& m, const char* name, const char* op,
                     void (*fn)(const ConstTensorView&, const ConstTensorView&, const TensorView&, const Params&,
                                const Stream&)) {
  m.def(name, [op, fn](const Raw& x, DType xt, const Raw& w, DType wt, const Raw& y, DType yt, const Params& p,
                       const Stream& s) {
    const auto a = view_of<ConstTensorView>(x, xt);
    const auto b = view_of<ConstTensorView>(w, wt);
    const auto out = view_of<TensorView>(y, yt);
    python::GilRelease release;
    fn(a, b, out, p, gpu_stream(s, op));
  });
}

}  // namespace

void bind_cuda(nb::module_& m) {
  // The CUDA planner's own rule for which problems its kernels run (zero
  // padding: volconv.torch pads other modes first), for framework layers that
  // send the rest elsewhere (volconv/torch/_cudnn_torch.py). Plain C++: built
  // and asked without CUDA too.
  m.def("_cuda_kernels_run", [](std::int64_t groups, std::int64_t in_channels, std::int64_t out_channels) {
    detail::ConvProblemGeometry g;
    g.groups = groups;
    g.in_channels = in_channels;
    g.out_channels = out_channels;
    return cuda_plan::unsupported_reason(g).empty();
  });
  m.def("_conv3d_output_shape", &conv3d_output_shape, nb::arg("input_shape"), nb::arg("weight_shape"),
        nb::arg("params"));
  m.def("_cuda_conv3d", [](const Raw& x, DType xt, const Raw& w, DType wt, const Raw& y, DType yt, const ConvParams& p,
                           const Stream& s) {
    const char* op = "conv3d";
    const auto a = view_of<ConstTensorView>(x, xt);
    const auto b = view_of<ConstTensorView>(w, wt);
    const auto out = view_of<TensorView>(y, yt);
    python::GilRelease release;
    conv3d(a, b, out, p, gpu_stream(s, op));
  });
  m.def("_cuda_conv3d_grad_input", [](const Raw& gy, DType gt, const Raw& w, DType wt, const Raw& y, DType yt,
                                      const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_input";
    const auto a = view_of<ConstTensorView>(gy, gt);
    const auto b = view_of<ConstTensorView>(w, wt);
    const auto out = view_of<TensorView>(y, yt);
    python::GilRelease release;
    conv3d_grad_input(a, b, out, p, gpu_stream(s, op));
  });
  m.def("_cuda_conv3d_grad_weight", [](const Raw& x, DType xt, const Raw& gy, DType gt, const Raw& y, DType yt,
                                       const ConvParams& p, const Stream& s) {
    const char* op = "conv3d_grad_weight";
    const auto a = view_of<ConstTensorView>(x, xt);
    const auto b = view_of<ConstTensorView>(gy, gt);
    const auto out = view_of<TensorView>(y, yt);
    python::GilRelease release;
    conv3d_grad_weight(a, b, out, p, gpu_stream(s, op));
  });
  // conv_transpose3d, conv_general and the gradients that make them differentiable.
  m.def("_conv_transpose3d_output_shape", &conv_transpose3d_output_shape, nb::arg("input_shape"),
        nb::arg("weight_shape"), nb::arg("params"));
  m.def("_conv_general_output_shape", &conv_general_output_shape, nb::arg("input_shape"), nb::arg("weight_shape"),
        nb::arg("params"));
  def_two_operand<ConvTransposeParams>(m, "_cuda_conv_transpose3d", "conv_transpose3d", &conv_transpose3d);
  def_two_operand<ConvGeneralParams>(m, "_cuda_conv_general", "conv_general", &conv_general);
  def_two_operand<ConvTransposeParams>(m, "_cuda_conv_transpose3d_grad_input", "conv_transpose3d_grad_input",
                                       &conv_transpose3d_grad_input);
  def_two_operand<ConvTransposeParams>(m, "_cuda_conv_transpose3d_grad_weight", "conv_transpose3d_grad_weight",
                                       &conv_transpose3d_grad_weight);
  def_two_operand<ConvGeneralParams>(m, "_cuda_conv_general_grad_weight", "conv_general_grad_weight",
                                     &conv_general_grad_weight);
  m.def("_gpu_external_stream", [](int index, std::uintptr_t handle) {
    return detail::external_gpu_stream(Device{DeviceType::gpu, index}, handle);
  }, nb::arg("index"), nb::arg("handle"));
  m.def("_gpu_stream_wait", &detail::gpu_stream_wait, nb::arg("waiter"), nb::arg("waited"));
  // Where cuDNN is looked for (volconv/_cuda.py, before the first CUDA call).
  m.def("_cudnn_set_search", &cudnn::set_search, nb::arg("dirs"), nb::arg("system_loader"));
  // Whether cuDNN's graph API runs the convolutions (else its legacy calls): tests run both.
  m.def("_cudnn_use_graph", &cudnn::set_graph_enabled, nb::arg("enabled"));
  m.def("_cudnn_graph_plans_built", &cudnn::graph_plans_built);
  // volconv.set_cuda_deterministic (volconv/_cuda_options.py).
  m.def("_cudnn_set_deterministic", &cudnn::set_deterministic, nb::arg("enabled"));
  m.def("_cudnn_deterministic", &cudnn::deterministic);
  m.def("_cudnn_nondeterministic_plans_built", &cudnn::nondeterministic_plans_built);
  // What an op would raise if cuDNN were looked for only there ("" when it
  // is found): the missing-cuDNN message, testable without a GPU.
  m.def("_cudnn_probe", [](const std::string& op, const std::vector<std::string>& dirs, bool system_loader) {
    const cudnn::Opened o = cudnn::open_library(dirs, system_loader);
    if (o.handle == nullptr) return cudnn::missing_message(op.c_str(), o.tried);
    cudnn::Api api{};
    const std::string why = cudnn::resolve(o.handle, api);
    return why.empty() ? std::string() : cudnn::missing_message(op.c_str(), o.path + " (" + why + ")");
  }, nb::arg("op"), nb::arg("dirs"), nb::arg("system_loader"));
  m.def("_gpu_backend", [] {
    switch (detail::gpu_kind()) {
      case detail::GpuKind::metal: return "metal";
      case detail::GpuKind::cuda: return "cuda";
      case detail::GpuKind::none: break;
    }
    return "none";
  });
}
