// volconv::activation_forward / activation_backward (volconv/epilogue.h):
// act(pre) + residual and grad * act'(pre), each one threaded pass, so a
// framework that keeps the pre-activation of a conv3d + activation pays one
// pass each way, not a chain of its own single-threaded element-wise ops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../core/element.h"
#include "../core/format.h"
#include "../core/view_checks.h"
#include "activation_f32.h"
#include "activation_math.h"
#include "thread_pool.h"
#include "volconv/epilogue.h"

namespace volconv {
namespace {

constexpr std::int64_t kBlock = 1024;  // values converted and computed per step

// pre, the second view (the backward's grad, the forward's residual) and
// out: one shape, valid views, out writing each element once and
// overlapping neither.
void check_views(Activation activation, const ConstTensorView& pre, const ConstTensorView& grad,
                 const TensorView& out, bool forward) {
  const std::string op = forward ? "[activation_forward] " : "[activation_backward] ";
  const char* second = forward ? "residual" : "grad";
  const char* out_name = forward ? "out" : "grad_pre";
  if (activation != Activation::none && activation != Activation::relu && activation != Activation::silu &&
      activation != Activation::gelu_tanh)
    throw std::invalid_argument(op + "Expected activation none, relu, silu or gelu_tanh but got " +
                                std::to_string(int(activation)) + ".");
  const auto shape = [](const Shape5& s) { return detail::format_tuple(s); };
  if (pre.shape != grad.shape || out.shape != grad.shape)
    throw std::invalid_argument(op + "Expected pre, " + second + " and " + out_name + " of one shape but got " +
                                shape(pre.shape) + ", " + shape(grad.shape) + " and " + shape(out.shape) + ".");
  for (auto s : grad.shape)
    if (s < 0) throw std::invalid_argument(op + "Expected non-negative sizes but got " +
                                           shape(grad.shape) + ".");
  std::int64_t n = 1;
  for (auto s : grad.shape)
    if (__builtin_mul_overflow(n, s, &n))
      throw std::invalid_argument(op + "The shape " + shape(grad.shape) +
                                  " has more elements than a 64-bit count holds.");
  if (n == 0) return;
  const struct {
    const char* name;
    ConstTensorView v;
  } views[3] = {{"pre", pre}, {second, grad}, {out_name, out}};
  for (const auto& [name, v] : views) {
    if (!v.data) throw std::invalid_argument(op + "Expected " + name + " to have data but got null.");
    if (!detail::strides_fit(v.shape, v.strides))
      throw std::invalid_argument(op + "The strides " + shape(v.strides) + " of " + name +
                                  " reach past a 64-bit offset.");
  }
  if (!detail::writes_each_element_once(out.shape, out.strides))
    throw std::invalid_argument(op + "Expected " + out_name + "'s strides " + shape(out.strides) +
                                " to write each element once.");
  const auto o = detail::byte_range(out.data, out.dtype, out.shape, out.strides);
  for (const ConstTensorView& in : {pre, grad}) {
    const auto r = detail::byte_range(in.data, in.dtype, in.shape, in.strides);
    if (r.lo <= o.hi && o.lo <= r.hi)
      throw std::invalid_argument(op + "Expected " + out_name + " not to overlap pre or " + second + ".");
  }
}

// The derivative on converted values: out[j] = g[j] * act'(z[j]) (relu:
// g where z > 0, else 0); T is float or double.
template <class T>
void grad_values(Activation act, const T* z, const T* g, T* out, std::int64_t n, bool avx2) {
  if constexpr (std::is_same_v<T, float>) {
    if (act == Activation::silu || act == Activation::gelu_tanh) return cpu::activation_grad_f32(z, g, out, n, act, avx2);
  }
  for (std::int64_t j = 0; j < n; ++j) {
    const T x = z[j];
    switch (act) {
      case Activation::none: out[j] = g[j]; break;
      case Activation::relu: out[j] = x <= T(0) ? T(0) : g[j]; break;  // a NaN pre passes grad, as torch
      case Activation::silu: {
        const T s = T(1) / (T(1) + std::exp(-x));
        out[j] = g[j] * (s * (T(1) + x * (T(1) - s)));
        break;
      }
      case Activation::gelu_tanh: {
        const T k = T(0.7978845608028654), a = T(0.044715);
        const T t = std::tanh(k * (x + a * x * x * x));
        out[j] = g[j] * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * a * x * x));
        break;
      }
    }
  }
}

template <class T> constexpr DType element_dtype() {
  return std::is_same_v<T, double> ? DType::float64 : DType::float32;
}

// Whether a view's elements can be used as T* directly (its dtype, aligned).
template <class T, class View> bool in_place(const View& v) {
  return v.dtype == element_dtype<T>() && reinterpret_cast<std::uintptr_t>(v.data) % alignof(T) == 0;
}

// Values [i0, i0 + n) of a C-contiguous view, converted to T.
template <class T>
void load_flat(const ConstTensorView& v, std::int64_t i0, std::int64_t n, T* dst) {
  visit_dtype(v.dtype, [&](auto el) {
    using E = decltype(el);
    const auto* src = static_cast<const typename E::storage*>(v.data) + i0;
    for (std::int64_t j = 0; j < n; ++j) dst[j] = E::template load<T>(load_any(src + j));
  });
}

template <class T>
void store_flat(const TensorView& v, std::int64_t i0, std::int64_t n, const T* src) {
  visit_dtype(v.dtype, [&](auto el) {
    using E = decltype(el);
    auto* dst = static_cast<typename E::storage*>(v.data) + i0;
    for (std::int64_t j = 0; j < n; ++j) store_any(dst + j, E::template store<T>(src[j]));
  });
}

// Element offset of flat index i (row-major over the shape) in a view.
std::int64_t offset_of(std::int64_t i, const Shape5& shape, const Shape5& strides) {
  std::int64_t off = 0;
  for (int d = 4; d >= 0; --d) {
    off += (i % shape[d]) * strides[d];
    i /= shape[d];
  }
  return off;
}

// Values [i0, i0 + n) in row-major order, all within one channel row
// (positions never split), converted to T.
template <class T>
void load_block(const ConstTensorView& v, std::int64_t i0, std::int64_t n, T* dst) {
  visit_dtype(v.dtype, [&](auto el) {
    using E = decltype(el);
    const auto* base = static_cast<const typename E::storage*>(v.data) + offset_of(i0, v.shape, v.strides);
    const std::int64_t cs = v.strides[4];
    for (std::int64_t j = 0; j < n; ++j) dst[j] = E::template load<T>(load_any(base + j * cs));
  });
}

template <class T>
void store_block(const TensorView& v, std::int64_t i0, std::int64_t n, const T* src) {
  visit_dtype(v.dtype, [&](auto el) {
    using E = decltype(el);
    auto* base = static_cast<typename E::storage*>(v.data) + offset_of(i0, v.shape, v.strides);
    const std::int64_t cs = v.strides[4];
    for (std::int64_t j = 0; j < n; ++j) store_any(base + j * cs, E::template store<T>(src[j]));
  });
}

bool flat(const ConstTensorView& v) { return v.strides == contiguous_strides(v.shape); }

// fn(a, b, out, n) over blocks of a view pair (b may be absent: null) and
// out, converted to T; in place where a view holds T.
template <class T, class F>
void elementwise(const ConstTensorView& a, const ConstTensorView* b, const TensorView& out, F&& fn) {
  const std::int64_t total = numel(out.shape), C = out.shape[4];
  if (flat(a) && (!b || flat(*b)) && flat(out)) {
    // C-contiguous views (the usual case): blocks of the flat array.
    const std::int64_t tasks = (total + 16 * kBlock - 1) / (16 * kBlock);
    cpu::parallel_for(tasks, [&](std::int64_t begin, std::int64_t end) {
      T za[kBlock], zb[kBlock], o[kBlock];
      const std::int64_t stop = std::min(total, end * 16 * kBlock);
      for (std::int64_t i0 = begin * 16 * kBlock; i0 < stop; i0 += kBlock) {
        const std::int64_t n = std::min(kBlock, stop - i0);
        const bool own_a = in_place<T>(a), own_b = b && in_place<T>(*b);
        const T* ap = own_a ? static_cast<const T*>(a.data) + i0 : za;
        const T* bp = !b ? nullptr : own_b ? static_cast<const T*>(b->data) + i0 : zb;
        T* op = in_place<T>(out) ? static_cast<T*>(out.data) + i0 : o;
        if (!own_a) load_flat(a, i0, n, za);
        if (b && !own_b) load_flat(*b, i0, n, zb);
        fn(ap, bp, op, n);
        if (op == o) store_flat(out, i0, n, o);
      }
    });
    return;
  }
  // Any strides: blocks of whole channel rows, one offset computation per row.
  const std::int64_t rows = total / C, rows_per_task = std::max<std::int64_t>(1, 16 * kBlock / C);
  cpu::parallel_for((rows + rows_per_task - 1) / rows_per_task, [&](std::int64_t begin, std::int64_t end) {
    T za[kBlock], zb[kBlock], o[kBlock];
    for (std::int64_t row = begin * rows_per_task; row < std::min(rows, end * rows_per_task); ++row)
      for (std::int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const std::int64_t n = std::min(kBlock, C - c0), i0 = row * C + c0;
        load_block(a, i0, n, za);
        if (b) load_block(*b, i0, n, zb);
        fn(za, b ? zb : nullptr, o, n);
        store_block(out, i0, n, o);
      }
  });
}

template <class T>
void forward_values(Activation act, const T* z, const T* r, T* out, std::int64_t n, bool avx2) {
  if constexpr (std::is_same_v<T, float>) {
    if (act == Activation::silu || act == Activation::gelu_tanh) {
      if (out != z) std::copy(z, z + n, out);
      return cpu::activate_f32(out, n, nullptr, r, act, avx2);
    }
  }
  for (std::int64_t j = 0; j < n; ++j) out[j] = cpu::activate(act, z[j]) + (r ? r[j] : T(0));
}

}  // namespace

void activation_forward(Activation activation, const ConstTensorView& pre,
                        const std::optional<ConstTensorView>& residual, const TensorView& out) {
  check_views(activation, pre, residual ? *residual : pre, out, true);
  if (numel(out.shape) == 0) return;
  const bool avx2 = cpu::activation_avx2();
  const bool f64 = pre.dtype == DType::float64 || out.dtype == DType::float64 ||
                   (residual && residual->dtype == DType::float64);
  const ConstTensorView* r = residual ? &*residual : nullptr;
  const auto run = [&](auto zero) {
    using T = decltype(zero);
    elementwise<T>(pre, r, out, [&](const T* z, const T* rr, T* o, std::int64_t n) {
      forward_values(activation, z, rr, o, n, avx2);
    });
  };
  f64 ? run(0.0) : run(0.0f);
}

void activation_backward(Activation activation, const ConstTensorView& pre, const ConstTensorView& grad,
                         const TensorView& grad_pre) {
  check_views(activation, pre, grad, grad_pre, false);
  if (numel(grad.shape) == 0) return;
  const bool avx2 = cpu::activation_avx2();
  const bool f64 = pre.dtype == DType::float64 || grad.dtype == DType::float64 || grad_pre.dtype == DType::float64;
  const auto run = [&](auto zero) {
    using T = decltype(zero);
    elementwise<T>(pre, &grad, grad_pre, [&](const T* z, const T* g, T* o, std::int64_t n) {
      grad_values(activation, z, g, o, n, avx2);
    });
  };
  f64 ? run(0.0) : run(0.0f);
}

}  // namespace volconv
