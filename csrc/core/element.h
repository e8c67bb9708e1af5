// Typed access to the storage of each DType (shared by the CPU kernels and
// the Metal host's staging copies): load as the accumulator type,
// store from it with round-to-nearest-even.
#pragma once

#include <cstdint>
#include <cstring>

#include "float_convert.h"
#include "volconv/dtype.h"

namespace volconv {

template <DType dt> struct Element;

template <> struct Element<DType::float32> {
  static constexpr DType dtype = DType::float32;
  using storage = float;
  template <class A> static A load(storage v) { return A(v); }
  template <class A> static storage store(A v) { return storage(v); }
};

template <> struct Element<DType::float64> {
  static constexpr DType dtype = DType::float64;
  using storage = double;
  template <class A> static A load(storage v) { return A(v); }
  template <class A> static storage store(A v) { return storage(v); }
};

template <> struct Element<DType::float16> {
  static constexpr DType dtype = DType::float16;
  using storage = std::uint16_t;
  template <class A> static A load(storage v) { return A(detail::half_to_float(v)); }
  template <class A> static storage store(A v) { return detail::float_to_half(float(v)); }
};

template <> struct Element<DType::bfloat16> {
  static constexpr DType dtype = DType::bfloat16;
  using storage = std::uint16_t;
  template <class A> static A load(storage v) { return A(detail::bf16_to_float(v)); }
  template <class A> static storage store(A v) { return detail::float_to_bf16(float(v)); }
};

// Reads or writes one element at any address: numpy views and C++ callers
// may place elements off their natural alignment. (The bytes are copied
// through an untyped pointer: clang checks a memcpy from a typed one.)
template <class S> inline S load_any(const S* p) {
  const void* bytes = p;
  S v;
  std::memcpy(&v, bytes, sizeof v);
  return v;
}
template <class S> inline void store_any(S* p, S v) {
  void* bytes = p;
  std::memcpy(bytes, &v, sizeof v);
}

// Calls f(Element<dt>{}) for the runtime dtype.
template <class F> decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float16: return f(Element<DType::float16>{});
    case DType::bfloat16: return f(Element<DType::bfloat16>{});
    case DType::float32: return f(Element<DType::float32>{});
    case DType::float64: break;
  }
  return f(Element<DType::float64>{});
}

}  // namespace volconv
