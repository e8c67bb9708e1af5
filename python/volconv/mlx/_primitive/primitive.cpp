// volconv's conv3d and conv_transpose3d as MLX primitives: each direction
// (forward, input gradient, weight gradient) is one primitive evaluated
// lazily on MLX's CPU stream like any MLX op; the forward's vjp builds the
// two gradient primitives. Built against one mlx version (MLX's C++ ABI is
// not stable): volconv.mlx uses it only when that version is the one imported.
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <mlx/allocator.h>
#include <mlx/array.h>
#include <mlx/backend/cpu/encoder.h>
#include <mlx/ops.h>
#include <mlx/primitives.h>
#include <mlx/version.h>

#include <array>
#include <stdexcept>
#include <string>
#include <vector>

#include "volconv/volconv.h"

namespace nb = nanobind;
namespace mx = mlx::core;

namespace {

using Int3 = std::array<int64_t, 3>;

volconv::DType dtype_of(mx::Dtype d, const char* op) {
  if (d == mx::float32) return volconv::DType::float32;
  if (d == mx::float16) return volconv::DType::float16;
  if (d == mx::bfloat16) return volconv::DType::bfloat16;
  if (d == mx::float64) return volconv::DType::float64;
  throw std::invalid_argument(std::string("[") + op +
                              "] Expected floating-point arrays (float16, bfloat16, float32 or float64).");
}

mx::Dtype mlx_dtype(volconv::DType d) {
  switch (d) {
    case volconv::DType::float16: return mx::float16;
    case volconv::DType::bfloat16: return mx::bfloat16;
    case volconv::DType::float64: return mx::float64;
    default: return mx::float32;
  }
}

volconv::Shape5 shape5(const mx::Shape& s) {
  if (s.size() != 5) throw std::invalid_argument("[conv3d] Expected 5-D arrays.");
  return {s[0], s[1], s[2], s[3], s[4]};
}

mx::Shape mlx_shape(const volconv::Shape5& s) {
  return {int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4])};
}

// A view of an evaluated mlx array (strides in elements, any layout).
volconv::ConstTensorView view(const mx::array& a) {
  volconv::ConstTensorView v;
  v.data = a.data<char>();
  v.dtype = dtype_of(a.dtype(), "conv3d");
  v.shape = shape5(a.shape());
  for (int i = 0; i < 5; ++i) v.strides[i] = a.strides()[i];
  return v;
}

mx::Dtype promoted(const mx::array& a, const mx::array& b, const char* op) {
  return mlx_dtype(volconv::promote_types(dtype_of(a.dtype(), op), dtype_of(b.dtype(), op)));
}

const volconv::Stream kCpu{};  // volconv's CPU stream: runs inside MLX's CPU task

enum class Direction { forward = 0, grad_input = 1, grad_weight = 2 };

// What differs between conv3d and conv_transpose3d: the params and the three kernels.
struct Conv {
  using Params = volconv::ConvParams;
  static constexpr const char* names[3] = {"VolconvConv3d", "VolconvConv3dGradInput",
                                           "VolconvConv3dGradWeight"};
  static void run(Direction d, const volconv::ConstTensorView& a, const volconv::ConstTensorView& b,
                  const volconv::TensorView& o, const Params& p) {
    if (d == Direction::forward) volconv::conv3d(a, b, o, p, kCpu);
    if (d == Direction::grad_input) volconv::conv3d_grad_input(a, b, o, p, kCpu);
    if (d == Direction::grad_weight) volconv::conv3d_grad_weight(a, b, o, p, kCpu);
  }
  static bool same(const Params& a, const Params& b) {
    return a.stride == b.stride && a.padding_lo == b.padding_lo && a.padding_hi == b.padding_hi &&
           a.dilation == b.dilation && a.groups == b.groups;
  }
};

struct ConvTranspose {
  using Params = volconv::ConvTransposeParams;
  static constexpr const char* names[3] = {"VolconvConvTranspose3d", "VolconvConvTranspose3dGradInput",
                                           "VolconvConvTranspose3dGradWeight"};
  static void run(Direction d, const volconv::ConstTensorView& a, const volconv::ConstTensorView& b,
                  const volconv::TensorView& o, const Params& p) {
    if (d == Direction::forward) volconv::conv_transpose3d(a, b, o, p, kCpu);
    if (d == Direction::grad_input) volconv::conv_transpose3d_grad_input(a, b, o, p, kCpu);
    if (d == Direction::grad_weight) volconv::conv_transpose3d_grad_weight(a, b, o, p, kCpu);
  }
  static bool same(const Params& a, const Params& b) {
    return a.stride == b.stride && a.padding_lo == b.padding_lo && a.padding_hi == b.padding_hi &&
           a.dilation == b.dilation && a.output_padding == b.output_padding && a.groups == b.groups;
  }
};

// One direction of one op. Inputs: (input, weight) forward, (grad_output,
// weight) for the input gradient, (input, grad_output) for the weight's.
template <class Op>
class Kernel : public mx::UnaryPrimitive {
 public:
  Kernel(mx::Stream s, Direction d, typename Op::Params p) : mx::UnaryPrimitive(s), d_(d), p_(p) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto a = view(in[0]), b = view(in[1]);
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto o = volconv::TensorView::contiguous(out.data<char>(), dtype_of(out.dtype(), name()),
                                             shape5(out.shape()));
    // MLX keeps the inputs' and output's buffers alive until its CPU stream has run this task.
    mx::cpu::get_command_encoder(stream()).dispatch([a, b, o, d = d_, p = p_]() { Op::run(d, a, b, o, p); });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error(std::string("[") + name() + "] volconv's MLX primitives run on the CPU stream only.");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cot,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    if (d_ != Direction::forward) {
      throw std::runtime_error(std::string("[") + name() + "] volconv's gradients are differentiable once.");
    }
    const mx::array &x = primals[0], &w = primals[1], &g = cot[0];
    std::vector<mx::array> grads;
    for (int i : argnums) {
      mx::array grad = i == 0 ? make(Direction::grad_input, g, w, x.shape()) : make(Direction::grad_weight, x, g, w.shape());
      grads.push_back(mx::astype(grad, primals[i].dtype(), stream()));
    }
    return grads;
  }
  const char* name() const override { return Op::names[int(d_)]; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto& o = static_cast<const Kernel<Op>&>(other);
    return d_ == o.d_ && Op::same(p_, o.p_);
  }

  mx::array make(Direction d, const mx::array& a, const mx::array& b, const mx::Shape& shape) {
    return mx::array(shape, promoted(a, b, Op::names[int(d)]), std::make_shared<Kernel<Op>>(stream(), d, p_),
                     {a, b});
  }

 private:
  Direction d_;
  typename Op::Params p_;
};

mx::Stream cpu_stream() { return mx::default_stream(mx::Device::cpu); }

mx::array conv3d(const mx::array& x, const mx::array& w, Int3 stride, Int3 pad_lo, Int3 pad_hi, Int3 dilation,
                 int64_t groups) {
  volconv::ConvParams p;
  p.stride = stride;
  p.padding_lo = pad_lo;
  p.padding_hi = pad_hi;
  p.dilation = dilation;
  p.groups = groups;
  auto shape = volconv::conv3d_output_shape(shape5(x.shape()), shape5(w.shape()), p);  // validates
  return Kernel<Conv>(cpu_stream(), Direction::forward, p).make(Direction::forward, x, w, mlx_shape(shape));
}

mx::array conv_transpose3d(const mx::array& x, const mx::array& w, Int3 stride, Int3 pad_lo, Int3 pad_hi,
                           Int3 dilation, Int3 output_padding, int64_t groups) {
  volconv::ConvTransposeParams p;
  p.stride = stride;
  p.padding_lo = pad_lo;
  p.padding_hi = pad_hi;
  p.dilation = dilation;
  p.output_padding = output_padding;
  p.groups = groups;
  auto shape = volconv::conv_transpose3d_output_shape(shape5(x.shape()), shape5(w.shape()), p);  // validates
  return Kernel<ConvTranspose>(cpu_stream(), Direction::forward, p)
      .make(Direction::forward, x, w, mlx_shape(shape));
}

}  // namespace

NB_MODULE(_volconv_mlx_primitive, m) {
  m.attr("mlx_version") = std::string(mx::version());
  // This module holds its own copy of volconv's CPU backend (libvolconv is
  // static): volconv.mlx keeps its thread count equal to volconv's.
  m.def("set_num_threads", &volconv::cpu::set_num_threads);
  m.def("get_num_threads", &volconv::cpu::get_num_threads);
  m.def("conv3d", &conv3d, nb::arg("input"), nb::arg("weight"), nb::arg("stride"), nb::arg("padding_lo"),
        nb::arg("padding_hi"), nb::arg("dilation"), nb::arg("groups"));
  m.def("conv_transpose3d", &conv_transpose3d, nb::arg("input"), nb::arg("weight"), nb::arg("stride"),
        nb::arg("padding_lo"), nb::arg("padding_hi"), nb::arg("dilation"), nb::arg("output_padding"),
        nb::arg("groups"));
}
