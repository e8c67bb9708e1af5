// Bad calls through the C++ API: each throws the right exception type with
// the exact message Python shows as ValueError, before any work, and never
// aborts the process.
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

using IA = std::invalid_argument;

ConvParams with(Int3 stride, Int3 lo, Int3 hi, Int3 dil, std::int64_t groups) {
  return check::conv_params(stride, lo, hi, dil, groups);
}

const Int3 one{1, 1, 1}, zero{0, 0, 0};

void test_geometry_messages() {
  const Shape5 in{1, 3, 3, 3, 2}, wt{1, 1, 1, 1, 2};
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, -1, 3, 3, 2}, wt, ConvParams{}),
                   "[conv3d] Array sizes must be non-negative, but got shapes - input: (1,-1,3,3,2) and weight: "
                   "(1,1,1,1,2).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, {-1, 1, 1, 1, 2}, ConvParams{}),
                   "[conv3d] Array sizes must be non-negative, but got shapes - input: (1,3,3,3,2) and weight: "
                   "(-1,1,1,1,2).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with({1, 0, 1}, zero, zero, one, 1)),
                   "[conv3d] Stride sizes must be positive. Got strides (1,0,1).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with({1, 1, -2}, zero, zero, one, 1)),
                   "[conv3d] Stride sizes must be positive. Got strides (1,1,-2).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, zero, zero, {0, 1, 1}, 1)),
                   "[conv3d] Kernel dilation sizes must be positive. Got kernel dilation (0,1,1).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, {0, -1, 0}, zero, one, 1)),
                   "[conv3d] Padding sizes must be non-negative. Got padding low (0,-1,0) and padding high (0,0,0).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, zero, {0, 0, -3}, one, 1)),
                   "[conv3d] Padding sizes must be non-negative. Got padding low (0,0,0) and padding high (0,0,-3).");
  const std::int64_t huge = std::numeric_limits<std::int64_t>::max();
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with({huge, 1, 1}, zero, zero, one, 1)),
                   "[conv3d] Stride, padding and dilation must be below 2^56.");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, zero, {0, huge, 0}, one, 1)),
                   "[conv3d] Stride, padding and dilation must be below 2^56.");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, zero, zero, one, 0)),
                   "[conv3d] Groups must be a positive integer. Got groups 0.");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, wt, with(one, zero, zero, one, -2)),
                   "[conv3d] Groups must be a positive integer. Got groups -2.");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 0}, {1, 1, 1, 1, 0}, ConvParams{}),
                   "[conv3d] Expected at least one input and one output channel but got shapes - input: "
                   "(1,3,3,3,0) and weight: (1,1,1,1,0).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, {0, 1, 1, 1, 2}, ConvParams{}),
                   "[conv3d] Expected at least one input and one output channel but got shapes - input: "
                   "(1,3,3,3,2) and weight: (0,1,1,1,2).");
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, {1, 1, 0, 1, 2}, ConvParams{}),
                   "[conv3d] Expected kernel spatial sizes of at least 1 but got weight of shape (1,1,0,1,2).");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 4}, {6, 1, 1, 1, 1}, with(one, zero, zero, one, 3)),
                   "[conv3d] The number of groups must divide both the input channels and the output channels. "
                   "Got groups 3 with 4 input channels and 6 output channels.");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 4}, {5, 1, 1, 1, 2}, with(one, zero, zero, one, 2)),
                   "[conv3d] The number of groups must divide both the input channels and the output channels. "
                   "Got groups 2 with 4 input channels and 5 output channels.");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 4}, {2, 1, 1, 1, 3}, ConvParams{}),
                   "[conv3d] Expect the input channels in the input and weight array to match (C_in = groups * "
                   "weight C_in, groups = 1) but got shapes - input: (1,3,3,3,4) and weight: (2,1,1,1,3).");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 4}, {2, 1, 1, 1, 4}, with(one, zero, zero, one, 2)),
                   "[conv3d] Expect the input channels in the input and weight array to match (C_in = groups * "
                   "weight C_in, groups = 2) but got shapes - input: (1,3,3,3,4) and weight: (2,1,1,1,4).");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 3, 3, 3, 1}, {1, 2, 4, 2, 1}, ConvParams{}),
                   "[conv3d] Spatial dimensions of input after padding cannot be smaller than the dilated kernel. "
                   "Got error at axis 2 for input with shape (1,3,3,3,1), padding low (0,0,0), padding high "
                   "(0,0,0), dilation (1,1,1) and weight of shape (1,2,4,2,1).");
  CHECK_THROWS_MSG(IA, make_conv_geometry({1, 5, 3, 3, 1}, {1, 3, 1, 1, 1}, with(one, {0, 0, 0}, {0, 0, 0}, {3, 1, 1}, 1)),
                   "[conv3d] Spatial dimensions of input after padding cannot be smaller than the dilated kernel. "
                   "Got error at axis 1 for input with shape (1,5,3,3,1), padding low (0,0,0), padding high "
                   "(0,0,0), dilation (3,1,1) and weight of shape (1,3,1,1,1).");
  // Padding makes it fit.
  CHECK_NO_THROW(make_conv_geometry({1, 5, 3, 3, 1}, {1, 3, 1, 1, 1}, with(one, {1, 0, 0}, {1, 0, 0}, {3, 1, 1}, 1)));
  CHECK_THROWS_MSG(IA, make_conv_geometry(in, {1, 40, 1, 1, 2}, with(one, zero, zero, {std::int64_t(1) << 55, 1, 1}, 1)),
                   "[conv3d] The dilated kernel has too many elements: the product of its sizes exceeds 2^56.");
  // conv3d_output_shape validates the same way (it is what Python calls).
  CHECK_THROWS_MSG(IA, conv3d_output_shape(in, wt, with(one, zero, zero, one, 0)),
                   "[conv3d] Groups must be a positive integer. Got groups 0.");
}

// A valid little problem with buffers to point views at.
struct Problem {
  Shape5 in_shape{1, 3, 3, 3, 2}, wt_shape{2, 3, 3, 3, 2}, out_shape{1, 1, 1, 1, 2};
  std::vector<float> x = std::vector<float>(54, 1.0f), w = std::vector<float>(108, 1.0f), y = std::vector<float>(2);
  ConstTensorView input() const { return ConstTensorView::contiguous(x.data(), DType::float32, in_shape); }
  ConstTensorView weight() const { return ConstTensorView::contiguous(w.data(), DType::float32, wt_shape); }
  TensorView output() { return TensorView::contiguous(y.data(), DType::float32, out_shape); }
};

void test_conv3d_messages() {
  Problem p;
  const Stream cpu = default_stream(Device{DeviceType::cpu, 0});
  CHECK_NO_THROW(conv3d(p.input(), p.weight(), p.output(), ConvParams{}, cpu));
  CHECK_EQ(p.y[0], 54.0f);
  CHECK_EQ(p.y[1], 54.0f);

  // Geometry errors come through conv3d unchanged.
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), p.output(), with(one, zero, zero, one, 0), cpu),
                   "[conv3d] Groups must be a positive integer. Got groups 0.");

  // Null pointers.
  ConstTensorView in = p.input();
  in.data = nullptr;
  CHECK_THROWS_MSG(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu),
                   "[conv3d] The input has a null data pointer.");
  ConstTensorView wt = p.weight();
  wt.data = nullptr;
  CHECK_THROWS_MSG(IA, conv3d(p.input(), wt, p.output(), ConvParams{}, cpu),
                   "[conv3d] The weight has a null data pointer.");
  TensorView out = p.output();
  out.data = nullptr;
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] The output has a null data pointer.");
  // An empty batch needs no data: null input and output are fine.
  {
    ConstTensorView e = ConstTensorView::contiguous(nullptr, DType::float32, {0, 3, 3, 3, 2});
    TensorView eo = TensorView::contiguous(nullptr, DType::float32, {0, 1, 1, 1, 2});
    CHECK_NO_THROW(conv3d(e, p.weight(), eo, ConvParams{}, cpu));
  }

  // Wrong output shape.
  out = p.output();
  out.shape = {1, 1, 1, 2, 2};
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] Expected an output of shape (1,1,1,1,2) but got (1,1,1,2,2).");
  out.shape = {1, 1, 1, 1, 3};
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] Expected an output of shape (1,1,1,1,2) but got (1,1,1,1,3).");

  // Wrong output dtype: it must be the promotion of input and weight.
  out = p.output();
  out.dtype = DType::float64;
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] Expected the output dtype to be float32 (the promotion of float32 and float32) but "
                   "got float64.");
  {
    std::vector<std::uint16_t> xh(54), wb(108), yh(2);
    const auto xi = ConstTensorView::contiguous(xh.data(), DType::float16, p.in_shape);
    const auto wi = ConstTensorView::contiguous(wb.data(), DType::bfloat16, p.wt_shape);
    CHECK_THROWS_MSG(IA, conv3d(xi, wi, TensorView::contiguous(yh.data(), DType::float16, p.out_shape), ConvParams{}, cpu),
                     "[conv3d] Expected the output dtype to be float32 (the promotion of float16 and bfloat16) "
                     "but got float16.");
  }
  // A dtype code outside the enum (e.g. from a C caller) is refused, not used.
  in = p.input();
  in.dtype = static_cast<DType>(7);
  CHECK_THROWS_MSG(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu),
                   "[conv3d] Unknown dtype code 7 for the input.");
  out = p.output();
  out.dtype = static_cast<DType>(200);
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] Unknown dtype code 200 for the output.");

  // Strides that reach past what 64-bit offsets can address.
  in = p.input();
  in.strides = {1, std::int64_t(1) << 60, 1, 1, 1};
  CHECK_THROWS_MSG(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu),
                   "[conv3d] The strides of the input (1,1152921504606846976,1,1,1) reach past 2^59 elements.");
  wt = p.weight();
  wt.strides = {std::numeric_limits<std::int64_t>::min() + 1, 1, 1, 1, 1};
  wt.shape = p.wt_shape;
  CHECK_THROWS_HAS(IA, conv3d(p.input(), wt, p.output(), ConvParams{}, cpu),
                   "[conv3d] The strides of the weight (");
  // INT64_MIN has no absolute value: it must be refused, not wrapped.
  in = p.input();
  in.strides[4] = std::numeric_limits<std::int64_t>::min();
  CHECK_THROWS_HAS(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu),
                   "reach past 2^59 elements.");

  // An output whose strides write two elements to one place.
  out = p.output();
  out.strides = {2, 2, 2, 2, 0};
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] The output strides (2,2,2,2,0) make elements of shape (1,1,1,1,2) overlap.");
  // Output aliasing the input or the weight.
  out = TensorView::contiguous(p.x.data() + 10, DType::float32, p.out_shape);
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] The output must not overlap the input or the weight.");
  out = TensorView::contiguous(p.w.data() + 106, DType::float32, p.out_shape);  // the last two elements
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] The output must not overlap the input or the weight.");
  // Directly after the weight's last element is fine.
  {
    std::vector<float> buf(110, 1.0f);
    const auto wv = ConstTensorView::contiguous(buf.data(), DType::float32, p.wt_shape);
    CHECK_NO_THROW(conv3d(p.input(), wv, TensorView::contiguous(buf.data() + 108, DType::float32, p.out_shape),
                          ConvParams{}, cpu));
    CHECK_EQ(buf[108], 54.0f);
  }

  // Streams of devices this build or machine does not have.
  if (!is_available(Device{DeviceType::gpu, 0}))
    CHECK_THROWS_HAS(IA, conv3d(p.input(), p.weight(), p.output(), ConvParams{}, Stream{0, Device{DeviceType::gpu, 0}}),
                     "[conv3d] The gpu is not available: ");
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), p.output(), ConvParams{}, Stream{0, Device{DeviceType::cpu, 2}}),
                   "[conv3d] The cpu is not available: only device index 0 exists.");

  // Nothing was written by any refused call.
  CHECK_EQ(p.y[0], 54.0f);
}

// Views that name a Metal buffer: overlap is judged by offsets within the
// one buffer, and without a Metal backend the CPU cannot read them.
void test_metal_buffer_views() {
  Problem p;
  const Stream cpu = default_stream(Device{DeviceType::cpu, 0});
  int fake_buffer = 0;  // stands in for an id<MTLBuffer>: never dereferenced here
  ConstTensorView in = p.input();
  in.data = nullptr;
  in.metal_buffer = &fake_buffer;
  in.metal_offset = 0;
  TensorView out = p.output();
  out.data = nullptr;
  out.metal_buffer = &fake_buffer;
  out.metal_offset = 100;  // inside the input's 216 bytes
  CHECK_THROWS_MSG(IA, conv3d(in, p.weight(), out, ConvParams{}, cpu),
                   "[conv3d] The output must not overlap the input or the weight.");
  out.metal_offset = 216;  // right after the input
  if (!is_available(Device{DeviceType::gpu, 0})) {
    CHECK_THROWS_HAS(IA, conv3d(in, p.weight(), out, ConvParams{}, cpu), "cannot be used on the CPU.");
    CHECK_THROWS_HAS(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu), "cannot be used on the CPU.");
  }
  // A buffer view is not a null pointer; a view with neither is.
  in.metal_buffer = nullptr;
  CHECK_THROWS_MSG(IA, conv3d(in, p.weight(), p.output(), ConvParams{}, cpu),
                   "[conv3d] The input has a null data pointer.");
}

void test_errors_are_std_exceptions() {
  // What a consumer catching the standard bases sees.
  try {
    conv3d_output_shape({1, 1, 1, 1, 1}, {1, 2, 1, 1, 1}, ConvParams{});
    CHECK(false);
  } catch (const std::logic_error& e) {
    CHECK(dynamic_cast<const std::invalid_argument*>(&e) != nullptr);
  }
}

}  // namespace

int main() {
  test_geometry_messages();
  test_conv3d_messages();
  test_metal_buffer_views();
  test_errors_are_std_exceptions();
  return check::result("test_validation");
}
