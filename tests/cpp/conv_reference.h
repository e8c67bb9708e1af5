// conv3d against a direct-loop float64 reference written here,
// independently of the library: typed host buffers addressed through strided
// views, the reference loop, and run_case (conv3d on the CPU vs the
// reference, with a tolerance per dtype; failures go to check::fail).
// Shared by the ctest executables that compare results.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

namespace conv_reference {

using namespace volconv;


// ---- element encodings, written out from the IEEE / bfloat16 layouts ------

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bfloat16 is the top half of a float32; exact for the values we store.
inline std::uint16_t to_bf16(double v) { return std::uint16_t(bits_of(float(v)) >> 16); }
inline double from_bf16(std::uint16_t h) { return float_of(std::uint32_t(h) << 16); }

// float16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
inline double from_f16(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 31, man = h & 1023;
  double v;
  if (exp == 0)
    v = std::ldexp(double(man), -24);  // subnormal
  else if (exp == 31)
    v = man ? NAN : INFINITY;
  else
    v = std::ldexp(double(1024 + man), exp - 25);
  return sign ? -v : v;
}

// Exact for normal values with at most 11 significant bits (all we store).
inline std::uint16_t to_f16(double v) {
  if (v == 0) return 0;
  const std::uint32_t u = bits_of(float(v));
  const std::uint32_t sign = u >> 31, exp = (u >> 23) & 255, man = u & 0x7fffff;
  return std::uint16_t((sign << 15) | ((exp - 127 + 15) << 10) | (man >> 13));
}

// ---- a typed host buffer addressed through a strided view ------------------

struct Buffer {
  DType dtype;
  std::size_t shift;  // bytes before element 0: 1 makes every element misaligned
  std::vector<unsigned char> bytes;
  Buffer(DType t, std::size_t n, std::size_t shift_bytes = 0)
      : dtype(t), shift(shift_bytes), bytes(n * dtype_size(t) + shift_bytes) {}
  void* at(std::int64_t i) { return bytes.data() + shift + std::size_t(i) * dtype_size(dtype); }
  void set(std::int64_t i, double v) {
    switch (dtype) {
      case DType::float16: { const std::uint16_t h = to_f16(v); std::memcpy(at(i), &h, 2); break; }
      case DType::bfloat16: { const std::uint16_t h = to_bf16(v); std::memcpy(at(i), &h, 2); break; }
      case DType::float32: { const float f = float(v); std::memcpy(at(i), &f, 4); break; }
      case DType::float64: std::memcpy(at(i), &v, 8); break;
    }
  }
  double get(std::int64_t i) {
    std::uint16_t h;
    float f;
    double d;
    switch (dtype) {
      case DType::float16: std::memcpy(&h, at(i), 2); return from_f16(h);
      case DType::bfloat16: std::memcpy(&h, at(i), 2); return from_bf16(h);
      case DType::float32: std::memcpy(&f, at(i), 4); return f;
      case DType::float64: std::memcpy(&d, at(i), 8); return d;
    }
    return NAN;
  }
};

// A 5-D array stored inside a larger buffer: `strides` (elements) from
// `base`; the rest of the buffer is padding a correct conv3d never touches.
struct Array {
  Shape5 shape;
  Shape5 strides;
  std::int64_t base = 0;
  Buffer buf;
  std::int64_t offset(const Shape5& i) const {
    std::int64_t o = base;
    for (int d = 0; d < 5; ++d) o += i[d] * strides[d];
    return o;
  }
};

// How a test lays an array out in memory.
enum class Layout { contiguous, padded, permuted, reversed, misaligned };

inline Array make_array(DType dtype, const Shape5& shape, Layout layout) {
  Shape5 strides{};
  std::int64_t size = 1, base = 0;
  if (layout == Layout::contiguous || layout == Layout::misaligned) {
    strides = contiguous_strides(shape);
    for (auto s : shape) size *= s;
  } else if (layout == Layout::padded) {
    // Every dim padded by one slot, channels every 2nd element.
    std::int64_t s = 2;
    for (int d = 4; d >= 0; --d) {
      strides[d] = s;
      s *= shape[d] + 1;
    }
    size = s + 3;
    base = 3;
  } else if (layout == Layout::permuted) {
    // Channels outermost after the batch (NCDHW memory order).
    const int order[5] = {0, 4, 1, 2, 3};  // slowest to fastest
    std::int64_t s = 1;
    for (int k = 4; k >= 0; --k) {
      strides[order[k]] = s;
      s *= shape[order[k]];
    }
    size = s;
  } else {  // reversed: negative strides in W and C
    strides = contiguous_strides(shape);
    for (auto s : shape) size *= s;
    base = (shape[3] - 1) * strides[3] + (shape[4] - 1) * strides[4];
    strides[3] = -strides[3];
    strides[4] = -strides[4];
  }
  // misaligned: contiguous, one byte off any element alignment (a numpy
  // view at an odd byte offset).
  return Array{shape, strides, base, Buffer(dtype, std::size_t(size), layout == Layout::misaligned ? 1 : 0)};
}

template <class F>
inline void for_each_index(const Shape5& shape, F&& f) {
  Shape5 i{};
  for (i[0] = 0; i[0] < shape[0]; ++i[0])
    for (i[1] = 0; i[1] < shape[1]; ++i[1])
      for (i[2] = 0; i[2] < shape[2]; ++i[2])
        for (i[3] = 0; i[3] < shape[3]; ++i[3])
          for (i[4] = 0; i[4] < shape[4]; ++i[4]) f(i);
}

// ---- the reference ---------------------------------------------------------

struct Geometry {
  const char* name;
  Shape5 input;
  std::int64_t c_out;
  Int3 kernel, stride, pad_lo, pad_hi, dilation;
  std::int64_t groups;
};

// out[n,od,oh,ow,co] = sum_{kd,kh,kw,ci} x[n, o*s - p_lo + k*dil, g*Cg + ci] * w[co,kd,kh,kw,ci]
// with g = co / (C_out/groups); taps in the padding read zero. Also returns
// sum |terms| per output for the rounding tolerance.
inline void reference(const Geometry& g, Array& x, Array& w, const Shape5& out_shape, std::vector<double>& ref,
               std::vector<double>& mag) {
  const std::int64_t cg = g.input[4] / g.groups, og = g.c_out / g.groups;
  ref.assign(std::size_t(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * out_shape[4]), 0.0);
  mag.assign(ref.size(), 0.0);
  std::size_t k = 0;
  for_each_index(out_shape, [&](const Shape5& o) {
    double sum = 0, abs_sum = 0;
    const std::int64_t co = o[4], grp = co / og;
    for (std::int64_t a = 0; a < g.kernel[0]; ++a)
      for (std::int64_t b = 0; b < g.kernel[1]; ++b)
        for (std::int64_t c = 0; c < g.kernel[2]; ++c) {
          const Shape5 pos{o[0], o[1] * g.stride[0] - g.pad_lo[0] + a * g.dilation[0],
                           o[2] * g.stride[1] - g.pad_lo[1] + b * g.dilation[1],
                           o[3] * g.stride[2] - g.pad_lo[2] + c * g.dilation[2], 0};
          bool inside = true;
          for (int d = 1; d < 4; ++d) inside = inside && pos[d] >= 0 && pos[d] < g.input[d];
          if (!inside) continue;
          for (std::int64_t ci = 0; ci < cg; ++ci) {
            Shape5 xi = pos;
            xi[4] = grp * cg + ci;
            const double t = x.buf.get(x.offset(xi)) * w.buf.get(w.offset({co, a, b, c, ci}));
            sum += t;
            abs_sum += std::fabs(t);
          }
        }
    ref[k] = sum;
    mag[k] = abs_sum;
    ++k;
  });
}

// ---- the parity check ------------------------------------------------------

// Values k/8 with |k| <= 16 are exact in every dtype, and every sum of their
// products here is exact in float32: so f32/f64 results must match exactly
// and f16/bf16 only differ by the final rounding. `random_values` uses full
// float mantissas instead (f32/f64 only), checked with a summation bound.
inline void run_case(const Geometry& g, DType tx, DType tw, Layout lx, Layout lw, Layout ly, bool random_values,
              std::uint32_t seed) {
  const Shape5 wshape{g.c_out, g.kernel[0], g.kernel[1], g.kernel[2], g.input[4] / g.groups};
  const ConvParams p = check::conv_params(g.stride, g.pad_lo, g.pad_hi, g.dilation, g.groups);
  const Shape5 out_shape = conv3d_output_shape(g.input, wshape, p);
  const DType ty = promote_types(tx, tw);

  Array x = make_array(tx, g.input, lx), w = make_array(tw, wshape, lw), y = make_array(ty, out_shape, ly);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-16, 16);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  auto value = [&] { return random_values ? double(float(uniform(rng))) : small(rng) / 8.0; };
  for_each_index(g.input, [&](const Shape5& i) { x.buf.set(x.offset(i), value()); });
  for_each_index(wshape, [&](const Shape5& i) { w.buf.set(w.offset(i), value()); });
  // A sentinel everywhere in the output buffer: the gaps must keep it.
  const double sentinel = -99.0;  // exact in every dtype
  const std::int64_t y_slots = std::int64_t(y.buf.bytes.size() / dtype_size(ty));
  for (std::int64_t i = 0; i < y_slots; ++i) y.buf.set(i, sentinel);

  const ConstTensorView xv{x.buf.at(x.base), tx, x.shape, x.strides};
  const ConstTensorView wv{w.buf.at(w.base), tw, w.shape, w.strides};
  const TensorView yv{y.buf.at(y.base), ty, y.shape, y.strides};
  const std::string label = cpu::active_isa() + " " + g.name + " " + dtype_name(tx) + "*" + dtype_name(tw) + " layouts " +
                            std::to_string(int(lx)) + std::to_string(int(lw)) + std::to_string(int(ly)) +
                            (random_values ? " random" : "");
  try {
    conv3d(xv, wv, yv, p, default_stream(Device{DeviceType::cpu, 0}));
  } catch (const std::exception& e) {
    check::fail(__FILE__, __LINE__, label + ": conv3d threw " + e.what());
    return;
  }

  std::vector<double> ref, mag;
  reference(g, x, w, out_shape, ref, mag);
  // Relative rounding of the output dtype, and the accumulation error as a
  // fraction of sum |x||w| (float32: tests/reference.py's TOLERANCE).
  const double out_eps = ty == DType::float16 ? std::ldexp(1.0, -11) : ty == DType::bfloat16 ? std::ldexp(1.0, -8) : 0;
  const double acc_eps = ty == DType::float64 ? 1e-13 : 2e-6;
  std::vector<bool> written(std::size_t(y_slots), false);
  std::size_t k = 0;
  int bad = 0;
  for_each_index(out_shape, [&](const Shape5& o) {
    const std::int64_t off = y.offset(o);
    written[std::size_t(off)] = true;
    const double got = y.buf.get(off), want = ref[k];
    const double tol = out_eps * std::fabs(want) + (random_values ? acc_eps * mag[k] : 0.0);
    if (!(std::fabs(got - want) <= tol) && bad++ < 3)
      check::fail(__FILE__, __LINE__,
                  label + ": output (" + std::to_string(o[0]) + "," + std::to_string(o[1]) + "," +
                      std::to_string(o[2]) + "," + std::to_string(o[3]) + "," + std::to_string(o[4]) +
                      ") = " + std::to_string(got) + ", reference " + std::to_string(want));
    ++k;
  });
  for (std::int64_t i = 0; i < y_slots; ++i)
    if (!written[std::size_t(i)] && y.buf.get(i) != sentinel) {
      check::fail(__FILE__, __LINE__, label + ": wrote outside the output view at slot " + std::to_string(i));
      break;
    }
}

}  // namespace conv_reference
