// volconv's conv3d as MLX primitives: Conv3d (forward) with a vjp made of
// Conv3dGradInput and Conv3dGradWeight, evaluated lazily on MLX's CPU stream
// like any MLX op. Experimental: built against one mlx version (MLX's C++ ABI
// is not stable); volconv.mlx uses it only when that version is the one
// imported.
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

#include <stdexcept>
#include <string>
#include <vector>

#include "volconv/volconv.h"

namespace nb = nanobind;
namespace mx = mlx::core;

namespace {

volconv::DType dtype_of(mx::Dtype d) {
  if (d == mx::float32) return volconv::DType::float32;
  if (d == mx::float16) return volconv::DType::float16;
  if (d == mx::bfloat16) return volconv::DType::bfloat16;
  if (d == mx::float64) return volconv::DType::float64;
  throw std::invalid_argument("[conv3d] Expected a floating-point array (float16, bfloat16, float32, float64).");
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
  v.dtype = dtype_of(a.dtype());
  v.shape = shape5(a.shape());
  for (int i = 0; i < 5; ++i) v.strides[i] = a.strides()[i];
  return v;
}

volconv::TensorView out_view(mx::array& out) {
  out.set_data(mx::allocator::malloc(out.nbytes()));
  volconv::TensorView v = volconv::TensorView::contiguous(out.data<char>(), dtype_of(out.dtype()),
                                                           shape5(out.shape()));
  return v;
}

const volconv::Stream kCpu{};  // volconv's CPU stream: runs inside MLX's CPU task

bool same_params(const volconv::ConvParams& a, const volconv::ConvParams& b) {
  return a.stride == b.stride && a.padding_lo == b.padding_lo && a.padding_hi == b.padding_hi &&
         a.dilation == b.dilation && a.groups == b.groups;
}

mx::array grad_input(const mx::array& g, const mx::array& w, const mx::Shape& x_shape,
                     const volconv::ConvParams& p, mx::Stream s);
mx::array grad_weight(const mx::array& x, const mx::array& g, const mx::Shape& w_shape,
                      const volconv::ConvParams& p, mx::Stream s);

class Conv3d : public mx::UnaryPrimitive {
 public:
  Conv3d(mx::Stream s, volconv::ConvParams p) : mx::UnaryPrimitive(s), p_(p) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto x = view(in[0]), w = view(in[1]);
    auto o = out_view(out);
    mx::cpu::get_command_encoder(stream()).dispatch(
        [x, w, o, p = p_]() { volconv::conv3d(x, w, o, p, kCpu); });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[conv3d] volconv's MLX primitive runs on the CPU stream only.");
  }
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cot,
                             const std::vector<int>& argnums, const std::vector<mx::array>&) override {
    std::vector<mx::array> grads;
    for (int a : argnums) {
      if (a == 0) {
        grads.push_back(mx::astype(grad_input(cot[0], primals[1], primals[0].shape(), p_, stream()),
                                   primals[0].dtype(), stream()));
      } else {
        grads.push_back(mx::astype(grad_weight(primals[0], cot[0], primals[1].shape(), p_, stream()),
                                   primals[1].dtype(), stream()));
      }
    }
    return grads;
  }
  const char* name() const override { return "VolconvConv3d"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return same_params(p_, static_cast<const Conv3d&>(other).p_);
  }

 private:
  volconv::ConvParams p_;
};

class Conv3dGradInput : public mx::UnaryPrimitive {
 public:
  Conv3dGradInput(mx::Stream s, volconv::ConvParams p) : mx::UnaryPrimitive(s), p_(p) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto g = view(in[0]), w = view(in[1]);
    auto o = out_view(out);
    mx::cpu::get_command_encoder(stream()).dispatch(
        [g, w, o, p = p_]() { volconv::conv3d_grad_input(g, w, o, p, kCpu); });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[conv3d_grad_input] volconv's MLX primitive runs on the CPU stream only.");
  }
  const char* name() const override { return "VolconvConv3dGradInput"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return same_params(p_, static_cast<const Conv3dGradInput&>(other).p_);
  }

 private:
  volconv::ConvParams p_;
};

class Conv3dGradWeight : public mx::UnaryPrimitive {
 public:
  Conv3dGradWeight(mx::Stream s, volconv::ConvParams p) : mx::UnaryPrimitive(s), p_(p) {}
  void eval_cpu(const std::vector<mx::array>& in, mx::array& out) override {
    auto x = view(in[0]), g = view(in[1]);
    auto o = out_view(out);
    mx::cpu::get_command_encoder(stream()).dispatch(
        [x, g, o, p = p_]() { volconv::conv3d_grad_weight(x, g, o, p, kCpu); });
  }
  void eval_gpu(const std::vector<mx::array>&, mx::array&) override {
    throw std::runtime_error("[conv3d_grad_weight] volconv's MLX primitive runs on the CPU stream only.");
  }
  const char* name() const override { return "VolconvConv3dGradWeight"; }
  bool is_equivalent(const mx::Primitive& other) const override {
    return same_params(p_, static_cast<const Conv3dGradWeight&>(other).p_);
  }

 private:
  volconv::ConvParams p_;
};

mx::Dtype promoted(const mx::array& a, const mx::array& b) {
  return mlx_dtype(volconv::promote_types(dtype_of(a.dtype()), dtype_of(b.dtype())));
}

mx::array grad_input(const mx::array& g, const mx::array& w, const mx::Shape& x_shape,
                     const volconv::ConvParams& p, mx::Stream s) {
  volconv::conv3d_grad_input_output_shape(shape5(g.shape()), shape5(w.shape()), shape5(x_shape), p);
  return mx::array(x_shape, promoted(g, w), std::make_shared<Conv3dGradInput>(s, p), {g, w});
}

mx::array grad_weight(const mx::array& x, const mx::array& g, const mx::Shape& w_shape,
                      const volconv::ConvParams& p, mx::Stream s) {
  volconv::conv3d_grad_weight_output_shape(shape5(x.shape()), shape5(g.shape()), shape5(w_shape), p);
  return mx::array(w_shape, promoted(x, g), std::make_shared<Conv3dGradWeight>(s, p), {x, g});
}

mx::array conv3d(const mx::array& x, const mx::array& w, std::array<int64_t, 3> stride,
                 std::array<int64_t, 3> pad_lo, std::array<int64_t, 3> pad_hi,
                 std::array<int64_t, 3> dilation, int64_t groups) {
  volconv::ConvParams p;
  p.stride = stride;
  p.padding_lo = pad_lo;
  p.padding_hi = pad_hi;
  p.dilation = dilation;
  p.groups = groups;
  auto out_shape = volconv::conv3d_output_shape(shape5(x.shape()), shape5(w.shape()), p);
  mx::Stream s = mx::default_stream(mx::Device::cpu);
  return mx::array(mlx_shape(out_shape), promoted(x, w), std::make_shared<Conv3d>(s, p), {x, w});
}

}  // namespace

NB_MODULE(_volconv_mlx_primitive, m) {
  m.attr("mlx_version") = std::string(mx::version());
  m.def("conv3d", &conv3d, nb::arg("input"), nb::arg("weight"), nb::arg("stride"), nb::arg("padding_lo"),
        nb::arg("padding_hi"), nb::arg("dilation"), nb::arg("groups"));
}
