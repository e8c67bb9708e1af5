// volconv's conv3d and conv_transpose3d as MLX primitives: each direction
// (forward, input gradient, weight gradient) is one primitive evaluated
// lazily on MLX's CPU stream like any MLX op; the forward's vjp builds the
// two gradient primitives. Built against one mlx version (MLX's C++ ABI is
// not stable): volconv.mlx uses it only when that version is the one imported.
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <mlx/allocator.h>
#include <mlx/array.h>
#include <mlx/backend/cpu/encoder.h>
#include <mlx/ops.h>
#include <mlx/primitives.h>
#include <mlx/version.h>

#include <array>
#include <memory>
#include <optional>
#include <type_traits>
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

// conv3d's fused epilogue on the primitive: which optional inputs follow
// (input, weight) -- the bias, then the residual -- and the activation.
struct Epi {
  bool bias = false, residual = false;
  volconv::Activation activation = volconv::Activation::none;
  bool operator==(const Epi& o) const {
    return bias == o.bias && residual == o.residual && activation == o.activation;
  }
};

// A 1-D view of an evaluated mlx array (the bias).
volconv::ConstVectorView vector_view(const mx::array& a) {
  return volconv::ConstVectorView{a.data<char>(), dtype_of(a.dtype(), "conv3d"), int64_t(a.shape(0)),
                                  int64_t(a.strides()[0])};
}

// What differs between conv3d and conv_transpose3d: the params and the three kernels.
struct Conv {
  using Params = volconv::ConvParams;
  static constexpr const char* names[3] = {"VolconvConv3d", "VolconvConv3dGradInput", "VolconvConv3dGradWeight"};
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

// One direction of one op. Inputs: (input, weight) forward, then conv3d's
// epilogue operands (bias, residual) when it has them; (grad_output, weight)
// for the input gradient; (input, grad_output) for the weight's.
template <class Op>
class Kernel : public mx::UnaryPrimitive {
 public:
  Kernel(mx::Stream s, Direction d, typename Op::Params p, Epi e = {})
      : mx::UnaryPrimitive(s), d_(d), p_(p), e_(e) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto o = volconv::TensorView::contiguous(out.data<char>(), dtype_of(out.dtype(), name()),
                                             shape5(out.shape()));
    auto a = view(in[0]), b = view(in[1]);
    typename Op::Params p = p_;
    if constexpr (std::is_same_v<Op, Conv>) {
      // The epilogue's operands, as conv3d reads them (its bias, in its order).
      std::size_t next = 2;
      if (e_.bias) p.epilogue.bias = vector_view(in[next++]);
      p.epilogue.activation = e_.activation;
      if (e_.residual) p.epilogue.residual = view(in[next]);
    }
    // MLX keeps the inputs' and output's buffers alive until its CPU stream has run this task.
    mx::cpu::get_command_encoder(stream()).dispatch([a, b, o, d = d_, p]() { Op::run(d, a, b, o, p); });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error(std::string("[") + name() + "] volconv's MLX primitives run on the CPU stream only.");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cot,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override {
    if (d_ != Direction::forward) {
      throw std::runtime_error(std::string("[") + name() + "] volconv's gradients are differentiable once.");
    }
    const mx::array &x = primals[0], &w = primals[1], &g = cot[0];
    const int bias_at = e_.bias ? 2 : -1, residual_at = e_.residual ? 2 + int(e_.bias) : -1;
    // dz: the cotangent of the pre-activation conv3d(x, w) + bias. Only relu
    // (without a residual) is fused here; silu and gelu_tanh keep their
    // pre-activation in an Activation primitive of their own (see conv3d).
    mx::array dz = g;
    if (e_.activation == volconv::Activation::relu) {
      // relu's output is positive exactly where its input is: nothing to keep.
      // (A NaN pre-activation passes the cotangent, as torch's threshold_backward.)
      dz = mx::where(mx::less_equal(outputs[0], mx::array(0.0f, outputs[0].dtype()), stream()),
                     mx::zeros_like(g, stream()), g, stream());
    }
    std::vector<mx::array> grads;
    for (int i : argnums) {
      if (i == 0) {
        grads.push_back(mx::astype(make(Direction::grad_input, dz, w, x.shape()), x.dtype(), stream()));
      } else if (i == 1) {
        grads.push_back(mx::astype(make(Direction::grad_weight, x, dz, w.shape()), w.dtype(), stream()));
      } else if (i == bias_at) {
        grads.push_back(mx::astype(mx::sum(dz, std::vector<int>{0, 1, 2, 3}, false, stream()),
                                   primals[i].dtype(), stream()));
      } else if (i == residual_at) {
        grads.push_back(mx::astype(g, primals[i].dtype(), stream()));
      } else {
        throw std::runtime_error(std::string("[") + name() + "] No operand " + std::to_string(i) + ".");
      }
    }
    return grads;
  }
  const char* name() const override { return Op::names[int(d_)]; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto& o = static_cast<const Kernel<Op>&>(other);
    return d_ == o.d_ && Op::same(p_, o.p_) && e_ == o.e_;
  }

  // The gradient primitives take no epilogue.
  mx::array make(Direction d, const mx::array& a, const mx::array& b, const mx::Shape& shape) {
    return mx::array(shape, promoted(a, b, Op::names[int(d)]), std::make_shared<Kernel<Op>>(stream(), d, p_),
                     {a, b});
  }

 private:
  Direction d_;
  typename Op::Params p_;
  Epi e_;
};

// activation(pre) + residual (Forward) and grad * activation'(pre) (Grad):
// silu and gelu_tanh after a conv3d whose output is the pre-activation
// (bias fused), so the backward reads the kept pre-activation instead of
// recomputing the convolution. Inputs: (pre[, residual]) / (pre, grad).
class ActivationPass : public mx::UnaryPrimitive {
 public:
  ActivationPass(mx::Stream s, volconv::Activation a, bool grad, bool residual)
      : mx::UnaryPrimitive(s), a_(a), grad_(grad), residual_(residual) {}

  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    out.set_data(mx::allocator::malloc(out.nbytes()));
    auto o = volconv::TensorView::contiguous(out.data<char>(), dtype_of(out.dtype(), name()), shape5(out.shape()));
    auto z = view(in[0]);
    std::optional<volconv::ConstTensorView> second;
    if (in.size() > 1) second = view(in[1]);
    mx::cpu::get_command_encoder(stream()).dispatch([z, second, o, a = a_, grad = grad_]() {
      if (grad)
        volconv::activation_backward(a, z, *second, o);
      else
        volconv::activation_forward(a, z, second, o);
    });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error(std::string("[") + name() + "] volconv's MLX primitives run on the CPU stream only.");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cot,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    if (grad_) throw std::runtime_error(std::string("[") + name() + "] volconv's gradients are differentiable once.");
    const mx::array &z = primals[0], &g = cot[0];
    std::vector<mx::array> grads;
    for (int i : argnums) {
      if (i == 0)
        grads.push_back(mx::astype(mx::array(g.shape(), g.dtype(),
                                             std::make_shared<ActivationPass>(stream(), a_, true, false),
                                             {z, g}),
                                   z.dtype(), stream()));
      else
        grads.push_back(mx::astype(g, primals[i].dtype(), stream()));
    }
    return grads;
  }
  const char* name() const override { return grad_ ? "VolconvActivationGrad" : "VolconvActivation"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    auto& o = static_cast<const ActivationPass&>(other);
    return a_ == o.a_ && grad_ == o.grad_ && residual_ == o.residual_;
  }

 private:
  volconv::Activation a_;
  bool grad_, residual_;
};

mx::Stream cpu_stream() { return mx::default_stream(mx::Device::cpu); }

// "(1, 2, 3)", as Python prints a shape (a 1-tuple "(4,)").
std::string tuple_text(const mx::Shape& s) {
  std::string t = "(";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

volconv::Activation activation_of(const std::string& name) {
  if (name == "none") return volconv::Activation::none;
  if (name == "relu") return volconv::Activation::relu;
  if (name == "silu") return volconv::Activation::silu;
  if (name == "gelu_tanh") return volconv::Activation::gelu_tanh;
  throw std::invalid_argument("[conv3d] Expected activation to be None, 'relu', 'silu' or 'gelu_tanh' but got '" +
                              name + "'.");
}

// conv3d with its fused epilogue: activation(conv3d(x, w) + bias) + residual,
// bias and residual optional (checked by volconv's own validation).
mx::array conv3d(const mx::array& x, const mx::array& w, Int3 stride, Int3 pad_lo, Int3 pad_hi, Int3 dilation,
                 int64_t groups, const std::optional<mx::array>& bias, const std::string& activation,
                 const std::optional<mx::array>& residual) {
  volconv::ConvParams p;
  p.stride = stride;
  p.padding_lo = pad_lo;
  p.padding_hi = pad_hi;
  p.dilation = dilation;
  p.groups = groups;
  auto shape = volconv::conv3d_output_shape(shape5(x.shape()), shape5(w.shape()), p);  // validates
  Epi e;
  e.activation = activation_of(activation);
  std::vector<mx::array> in{x, w};
  if (bias) {
    if (bias->ndim() != 1 || bias->shape(0) != shape[4])
      throw std::invalid_argument("[conv3d] Expected the bias to have shape (" + std::to_string(shape[4]) +
                                  ",) (C_out) but got " + tuple_text(bias->shape()) + ".");
    dtype_of(bias->dtype(), "conv3d");
    e.bias = true;
    in.push_back(*bias);
  }
  if (residual) {
    if (residual->shape() != mlx_shape(shape))
      throw std::invalid_argument("[conv3d] Expected the residual to have the output's shape " +
                                  tuple_text(mlx_shape(shape)) + " but got " + tuple_text(residual->shape()) + ".");
    dtype_of(residual->dtype(), "conv3d");
    e.residual = true;
    in.push_back(*residual);
  }
  const bool keep_pre = e.activation == volconv::Activation::silu || e.activation == volconv::Activation::gelu_tanh ||
                        (e.activation == volconv::Activation::relu && e.residual);
  if (!keep_pre)  // all fused: relu's backward needs only the output
    return mx::array(mlx_shape(shape), promoted(x, w, "conv3d"),
                     std::make_shared<Kernel<Conv>>(cpu_stream(), Direction::forward, p, e), std::move(in));
  // The pre-activation conv3d(x, w) + bias (bias fused), kept for the
  // backward: one output-sized array per layer instead of a second
  // convolution in the backward; then activation + residual in one pass.
  Epi conv_e;
  conv_e.bias = e.bias;
  std::vector<mx::array> conv_in(in.begin(), in.begin() + (e.bias ? 3 : 2));
  mx::array pre(mlx_shape(shape), promoted(x, w, "conv3d"),
                std::make_shared<Kernel<Conv>>(cpu_stream(), Direction::forward, p, conv_e), std::move(conv_in));
  std::vector<mx::array> act_in{pre};
  if (e.residual) act_in.push_back(*residual);
  const auto dtype = pre.dtype();
  return mx::array(mlx_shape(shape), dtype,
                   std::make_shared<ActivationPass>(cpu_stream(), e.activation, false, e.residual), std::move(act_in));
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
        nb::arg("padding_hi"), nb::arg("dilation"), nb::arg("groups"), nb::arg("bias").none() = nb::none(),
        nb::arg("activation") = "none", nb::arg("residual").none() = nb::none());
  m.def("conv_transpose3d", &conv_transpose3d, nb::arg("input"), nb::arg("weight"), nb::arg("stride"),
        nb::arg("padding_lo"), nb::arg("padding_hi"), nb::arg("dilation"), nb::arg("output_padding"),
        nb::arg("groups"));
}
