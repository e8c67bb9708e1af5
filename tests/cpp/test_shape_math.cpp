// Shape math of the public API: output shapes, geometry fields, 'same'
// padding, strides of contiguous views, dtype helpers, version.
#include <cstring>
#include <string>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

// The output length of one spatial axis, written out here independently.
std::int64_t out_len(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t lo, std::int64_t hi,
                     std::int64_t dil) {
  return (in + lo + hi - dil * (k - 1) - 1) / s + 1;
}

ConvParams params(Int3 stride, Int3 lo, Int3 hi, Int3 dil, std::int64_t groups) {
  return check::conv_params(stride, lo, hi, dil, groups);
}

void test_output_shapes() {
  struct Case {
    Shape5 input, weight;
    ConvParams p;
  };
  const Case cases[] = {
      {{1, 5, 6, 7, 3}, {4, 3, 3, 3, 3}, params({1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
      {{2, 7, 6, 5, 4}, {6, 3, 2, 3, 4}, params({2, 1, 3}, {1, 0, 2}, {0, 1, 1}, {1, 1, 1}, 1)},
      {{1, 9, 8, 7, 2}, {3, 2, 3, 2, 2}, params({1, 1, 1}, {2, 1, 0}, {1, 2, 0}, {3, 2, 1}, 1)},
      {{2, 4, 5, 6, 6}, {9, 1, 3, 3, 2}, params({1, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 3)},
      {{1, 3, 3, 3, 2}, {2, 4, 4, 4, 2}, params({1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {1, 1, 1}, 1)},
      {{0, 3, 3, 3, 2}, {5, 1, 1, 1, 2}, params({3, 3, 3}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1)},
      {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}, params({7, 7, 7}, {0, 0, 0}, {0, 0, 0}, {9, 9, 9}, 1)},
      {{1, 100, 1, 1, 8}, {8, 3, 1, 1, 1}, params({2, 1, 1}, {1, 0, 0}, {1, 0, 0}, {5, 1, 1}, 8)},
  };
  for (const Case& c : cases) {
    Shape5 expected{c.input[0], 0, 0, 0, c.weight[0]};
    for (int i = 0; i < 3; ++i)
      expected[i + 1] = out_len(c.input[i + 1], c.weight[i + 1], c.p.stride[i], c.p.padding_lo[i],
                                c.p.padding_hi[i], c.p.dilation[i]);
    CHECK(conv3d_output_shape(c.input, c.weight, c.p) == expected);

    const ConvGeometry g = make_conv_geometry(c.input, c.weight, c.p);
    CHECK(g.output_shape() == expected);
    CHECK_EQ(g.batch, c.input[0]);
    CHECK_EQ(g.in_channels, c.input[4]);
    CHECK_EQ(g.out_channels, c.weight[0]);
    CHECK_EQ(g.groups, c.p.groups);
    CHECK_EQ(g.in_channels_per_group, c.weight[4]);
    CHECK_EQ(g.out_channels_per_group, c.weight[0] / c.p.groups);
    for (int i = 0; i < 3; ++i) {
      CHECK_EQ(g.in[i], c.input[i + 1]);
      CHECK_EQ(g.kernel[i], c.weight[i + 1]);
      CHECK_EQ(g.out[i], expected[i + 1]);
    }
    const double flops = 2.0 * double(expected[0] * expected[1] * expected[2] * expected[3] * expected[4]) *
                         double(c.weight[1] * c.weight[2] * c.weight[3] * c.weight[4]);
    CHECK_EQ(g.flops(), flops);
  }
}

void test_large_shapes_do_not_overflow() {
  // 2^57 elements: the geometry refuses it with a clear message; a product
  // that overflows int64 is refused the same way, not wrapped.
  const Shape5 big{1 << 21, 1 << 12, 1 << 12, 1 << 12, 1};
  CHECK_THROWS_MSG(std::invalid_argument, make_conv_geometry(big, {1, 1, 1, 1, 1}, ConvParams{}),
                   "[conv3d] The input has too many elements: the product of its sizes exceeds 2^56.");
  const std::int64_t m = std::int64_t(1) << 40;
  CHECK_THROWS_MSG(std::invalid_argument, make_conv_geometry({m, m, m, 1, 1}, {1, 1, 1, 1, 1}, ConvParams{}),
                   "[conv3d] The input has too many elements: the product of its sizes exceeds 2^56.");
  // Exactly 2^56 is fine; the output is checked too.
  const Shape5 ok{1 << 14, 1 << 14, 1 << 14, 1 << 14, 1};
  CHECK(conv3d_output_shape(ok, {1, 1, 1, 1, 1}, ConvParams{}) == ok);
  CHECK_THROWS_MSG(std::invalid_argument, conv3d_output_shape(ok, {2, 1, 1, 1, 1}, ConvParams{}),
                   "[conv3d] The output has too many elements: the product of its sizes exceeds 2^56.");
}

void test_same_padding() {
  ConvParams p;
  p.dilation = {1, 2, 3};
  set_same_padding(p, {3, 4, 5});
  // total = dilation*(k-1) = (2, 6, 12); low half rounded down.
  CHECK(p.padding_lo == (Int3{1, 3, 6}));
  CHECK(p.padding_hi == (Int3{1, 3, 6}));
  ConvParams q;
  set_same_padding(q, {2, 1, 4});  // totals (1, 0, 3)
  CHECK(q.padding_lo == (Int3{0, 0, 1}));
  CHECK(q.padding_hi == (Int3{1, 0, 2}));
  // With 'same' padding and stride 1 the output keeps the input's size.
  const Shape5 in{2, 5, 6, 7, 3};
  CHECK(conv3d_output_shape(in, {4, 3, 4, 5, 3}, p) == (Shape5{2, 5, 6, 7, 4}));

  ConvParams s;
  s.stride = {1, 2, 1};
  CHECK_THROWS_MSG(std::invalid_argument, set_same_padding(s, {3, 3, 3}),
                   "[conv3d] padding='same' is only supported with stride 1, but got strides (1,2,1).");
  CHECK_THROWS_MSG(std::invalid_argument, set_same_padding(q, {3, 0, 3}),
                   "[conv3d] padding='same' needs positive kernel sizes and dilations.");
  // dilation*(k-1) past int64 (and past 2^56) is refused, not wrapped negative.
  ConvParams big;
  big.dilation = {1, std::int64_t(1) << 62, 1};
  CHECK_THROWS_MSG(std::invalid_argument, set_same_padding(big, {3, 3, 3}),
                   "[conv3d] padding='same' needs padding dilation*(kernel-1) below 2^56, but got dilation "
                   "(1,4611686018427387904,1) and kernel sizes (3,3,3).");
}

void test_tensor_views() {
  CHECK(contiguous_strides({2, 3, 4, 5, 6}) == (Shape5{360, 120, 30, 6, 1}));
  // Zero-size dims do not zero the strides of the dims before them.
  CHECK(contiguous_strides({2, 0, 4, 5, 6}) == (Shape5{120, 120, 30, 6, 1}));
  float buf[8];
  const TensorView v = TensorView::contiguous(buf, DType::float32, {1, 2, 2, 2, 1});
  CHECK(v.data == buf);
  CHECK(v.strides == (Shape5{8, 4, 2, 1, 1}));
  const ConstTensorView c = v;  // a writable view converts to a read-only one
  CHECK(c.data == buf && c.dtype == DType::float32 && c.shape == v.shape && c.strides == v.strides);
  const ConstTensorView d = ConstTensorView::contiguous(buf, DType::bfloat16, {1, 1, 1, 2, 3});
  CHECK(d.strides == (Shape5{6, 6, 6, 3, 1}));
}

void test_dtypes() {
  CHECK_EQ(dtype_size(DType::float16), 2u);
  CHECK_EQ(dtype_size(DType::bfloat16), 2u);
  CHECK_EQ(dtype_size(DType::float32), 4u);
  CHECK_EQ(dtype_size(DType::float64), 8u);
  CHECK(std::string(dtype_name(DType::float16)) == "float16");
  CHECK(std::string(dtype_name(DType::bfloat16)) == "bfloat16");
  CHECK(std::string(dtype_name(DType::float32)) == "float32");
  CHECK(std::string(dtype_name(DType::float64)) == "float64");
  // MLX's promotion: equal stays, f16+bf16 -> f32, else the wider.
  static_assert(promote_types(DType::float16, DType::float16) == DType::float16, "");
  static_assert(promote_types(DType::bfloat16, DType::bfloat16) == DType::bfloat16, "");
  static_assert(promote_types(DType::float16, DType::bfloat16) == DType::float32, "");
  static_assert(promote_types(DType::bfloat16, DType::float32) == DType::float32, "");
  static_assert(promote_types(DType::float16, DType::float64) == DType::float64, "");
  static_assert(promote_types(DType::float64, DType::float32) == DType::float64, "");
}

void test_devices() {
  CHECK(is_available(Device{DeviceType::cpu, 0}));
  CHECK(unavailable_reason(Device{DeviceType::cpu, 0}).empty());
  CHECK(!is_available(Device{DeviceType::cpu, 1}));
  CHECK_EQ(unavailable_reason(Device{DeviceType::cpu, 1}), std::string("only device index 0 exists"));
  const Stream cpu0 = default_stream(Device{DeviceType::cpu, 0});
  CHECK_EQ(cpu0.index, 0);
  const Stream s1 = new_stream(Device{DeviceType::cpu, 0});
  const Stream s2 = new_stream(Device{DeviceType::cpu, 0});
  CHECK(s1 != s2 && s1 != cpu0);
  CHECK_NO_THROW(synchronize(s1));
  CHECK_THROWS_MSG(std::invalid_argument, default_stream(Device{DeviceType::cpu, 3}),
                   "[volconv] Device cpu(3) is not available: only device index 0 exists.");
  if (!is_available(Device{DeviceType::gpu, 0})) {
    CHECK(default_device() == (Device{DeviceType::cpu, 0}));
    CHECK_THROWS_HAS(std::invalid_argument, new_stream(Device{DeviceType::gpu, 0}),
                     "[volconv] Device gpu(0) is not available: ");
    CHECK_THROWS_HAS(std::invalid_argument, set_default_device(Device{DeviceType::gpu, 0}),
                     "[volconv] Device gpu(0) is not available: ");
  }
  set_default_device(Device{DeviceType::cpu, 0});
  CHECK(default_device() == (Device{DeviceType::cpu, 0}));
}

void test_version() {
  const std::string v = std::to_string(VOLCONV_VERSION_MAJOR) + "." + std::to_string(VOLCONV_VERSION_MINOR) + "." +
                        std::to_string(VOLCONV_VERSION_PATCH);
  CHECK_EQ(v, std::string(volconv::version));
#ifdef VOLCONV_TEST_PROJECT_VERSION
  CHECK_EQ(v, std::string(VOLCONV_TEST_PROJECT_VERSION));  // the header agrees with CMake's project()
#endif
}

}  // namespace

int main() {
  test_output_shapes();
  test_large_shapes_do_not_overflow();
  test_same_padding();
  test_tensor_views();
  test_dtypes();
  test_devices();
  test_version();
  return check::result("test_shape_math");
}
