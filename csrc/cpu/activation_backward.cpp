// volconv::activation_backward (volconv/epilogue.h): grad * act'(pre) in one
// threaded pass, so a framework's backward of a fused conv3d + activation
// costs the recomputed conv and this pass, not a chain of its own
// single-threaded element-wise ops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../core/element.h"
#include "../core/format.h"
#include "../core/view_checks.h"
#include "activation_f32.h"
#include "thread_pool.h"
#include "volconv/epilogue.h"

namespace volconv {
namespace {

constexpr const char* kOp = "[activation_backward] ";
constexpr std::int64_t kBlock = 1024;  // values converted and computed per step

void check_views(Activation activation, const ConstTensorView& pre, const ConstTensorView& grad,
                 const TensorView& out) {
  if (activation != Activation::none && activation != Activation::relu && activation != Activation::silu &&
      activation != Activation::gelu_tanh)
    throw std::invalid_argument(std::string(kOp) + "Expected activation none, relu, silu or gelu_tanh but got " +
                                std::to_string(int(activation)) + ".");
  const auto shape = [](const Shape5& s) { return detail::format_tuple(s); };
  if (pre.shape != grad.shape || out.shape != grad.shape)
    throw std::invalid_argument(std::string(kOp) + "Expected pre, grad and grad_pre of one shape but got " +
                                shape(pre.shape) + ", " + shape(grad.shape) + " and " + shape(out.shape) + ".");
  for (auto s : grad.shape)
    if (s < 0) throw std::invalid_argument(std::string(kOp) + "Expected non-negative sizes but got " +
                                           shape(grad.shape) + ".");
  std::int64_t n = 1;
  for (auto s : grad.shape)
    if (__builtin_mul_overflow(n, s, &n))
      throw std::invalid_argument(std::string(kOp) + "The shape " + shape(grad.shape) +
                                  " has more elements than a 64-bit count holds.");
  if (n == 0) return;
  const struct {
    const char* name;
    ConstTensorView v;
  } views[3] = {{"pre", pre}, {"grad", grad}, {"grad_pre", out}};
  for (const auto& [name, v] : views) {
    if (!v.data) throw std::invalid_argument(std::string(kOp) + "Expected " + name + " to have data but got null.");
    if (!detail::strides_fit(v.shape, v.strides))
      throw std::invalid_argument(std::string(kOp) + "The strides " + shape(v.strides) + " of " + name +
                                  " reach past a 64-bit offset.");
  }
  if (!detail::writes_each_element_once(out.shape, out.strides))
    throw std::invalid_argument(std::string(kOp) + "Expected grad_pre's strides " + shape(out.strides) +
                                " to write each element once.");
  const auto o = detail::byte_range(out.data, out.dtype, out.shape, out.strides);
  for (const ConstTensorView& in : {pre, grad}) {
    const auto r = detail::byte_range(in.data, in.dtype, in.shape, in.strides);
    if (r.lo <= o.hi && o.lo <= r.hi)
      throw std::invalid_argument(std::string(kOp) + "Expected grad_pre not to overlap pre or grad.");
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

template <class T>
void run(Activation act, const ConstTensorView& pre, const ConstTensorView& grad, const TensorView& out) {
  const bool avx2 = cpu::activation_avx2();
  const std::int64_t total = numel(grad.shape), C = grad.shape[4];
  if (flat(pre) && flat(grad) && flat(out)) {
    // C-contiguous views (the usual case): blocks of the flat array, read in
    // place when their dtype is T.
    const std::int64_t tasks = (total + 16 * kBlock - 1) / (16 * kBlock);
    cpu::parallel_for(tasks, [&](std::int64_t begin, std::int64_t end) {
      T z[kBlock], g[kBlock], o[kBlock];
      const std::int64_t stop = std::min(total, end * 16 * kBlock);
      for (std::int64_t i0 = begin * 16 * kBlock; i0 < stop; i0 += kBlock) {
        const std::int64_t n = std::min(kBlock, stop - i0);
        const bool own_pre = in_place<T>(pre), own_grad = in_place<T>(grad);
        const T* zp = own_pre ? static_cast<const T*>(pre.data) + i0 : z;
        const T* gp = own_grad ? static_cast<const T*>(grad.data) + i0 : g;
        T* op = in_place<T>(out) ? static_cast<T*>(out.data) + i0 : o;
        if (!own_pre) load_flat(pre, i0, n, z);
        if (!own_grad) load_flat(grad, i0, n, g);
        grad_values(act, zp, gp, op, n, avx2);
        if (op == o) store_flat(out, i0, n, o);
      }
    });
    return;
  }
  // Any strides: blocks of whole channel rows, one offset computation per row.
  const std::int64_t rows = total / C, rows_per_task = std::max<std::int64_t>(1, 16 * kBlock / C);
  cpu::parallel_for((rows + rows_per_task - 1) / rows_per_task, [&](std::int64_t begin, std::int64_t end) {
    T z[kBlock], g[kBlock], o[kBlock];
    for (std::int64_t row = begin * rows_per_task; row < std::min(rows, end * rows_per_task); ++row)
      for (std::int64_t c0 = 0; c0 < C; c0 += kBlock) {
        const std::int64_t n = std::min(kBlock, C - c0), i0 = row * C + c0;
        load_block(pre, i0, n, z);
        load_block(grad, i0, n, g);
        grad_values(act, z, g, o, n, avx2);
        store_block(out, i0, n, o);
      }
  });
}

}  // namespace

void activation_backward(Activation activation, const ConstTensorView& pre, const ConstTensorView& grad,
                         const TensorView& grad_pre) {
  check_views(activation, pre, grad, grad_pre);
  if (numel(grad.shape) == 0) return;
  const bool f64 = pre.dtype == DType::float64 || grad.dtype == DType::float64 || grad_pre.dtype == DType::float64;
  f64 ? run<double>(activation, pre, grad, grad_pre) : run<float>(activation, pre, grad, grad_pre);
}

}  // namespace volconv
