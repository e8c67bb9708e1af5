// conv3d's fused epilogue through the C++ API: the values on a problem whose
// convolution is known exactly (all ones: every output is 54), and the
// refusals Python cannot reach (an output overlapping the residual, a GPU
// stream on a machine without one).
#include <cmath>
#include <stdexcept>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

using IA = std::invalid_argument;

// (1,3,3,3,2) ones * (2,3,3,3,2) ones, no padding -> (1,1,1,1,2) of 54.
struct Problem {
  Shape5 in_shape{1, 3, 3, 3, 2}, wt_shape{2, 3, 3, 3, 2}, out_shape{1, 1, 1, 1, 2};
  std::vector<float> x = std::vector<float>(54, 1.0f), w = std::vector<float>(108, 1.0f), y = std::vector<float>(2);
  ConstTensorView input() const { return ConstTensorView::contiguous(x.data(), DType::float32, in_shape); }
  ConstTensorView weight() const { return ConstTensorView::contiguous(w.data(), DType::float32, wt_shape); }
  TensorView output() { return TensorView::contiguous(y.data(), DType::float32, out_shape); }
};

const Stream cpu{0, Device{DeviceType::cpu, 0}};

void test_values() {
  Problem p;
  const std::vector<double> bias{-60.0, -53.5};  // float64 bias on a float32 output: converted on read
  const std::vector<float> residual{1.0f, 2.0f};
  ConvParams params;
  params.epilogue.bias = ConstVectorView{bias.data(), DType::float64, 2, 1};
  params.epilogue.activation = Activation::relu;
  params.epilogue.residual = ConstTensorView::contiguous(residual.data(), DType::float32, p.out_shape);
  CHECK_NO_THROW(conv3d(p.input(), p.weight(), p.output(), params, cpu));
  CHECK_EQ(p.y[0], 1.0f);  // relu(54 - 60) + 1
  CHECK_EQ(p.y[1], 2.5f);  // relu(54 - 53.5) + 2
  params.epilogue.activation = Activation::silu;
  CHECK_NO_THROW(conv3d(p.input(), p.weight(), p.output(), params, cpu));
  const double s = 0.5 / (1.0 + std::exp(-0.5)) + 2.0;  // silu(0.5) + 2
  CHECK(std::fabs(p.y[1] - s) < 1e-6);
}

void test_refusals() {
  Problem p;
  ConvParams params;
  const std::vector<float> short_bias(3);
  params.epilogue.bias = ConstVectorView{short_bias.data(), DType::float32, 3, 1};
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), p.output(), params, cpu),
                   "[conv3d] Expected bias of shape (C_out,) = (2,) but got (3,).");

  // The output as its own residual (y += conv): refused, not raced.
  ConvParams in_place;
  in_place.epilogue.residual = ConstTensorView(p.output());
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), p.output(), in_place, cpu),
                   "[conv3d] The output must not overlap the residual (an in-place residual add is not supported).");

  ConvParams bad_act;
  bad_act.epilogue.activation = Activation(7);
  CHECK_THROWS_MSG(IA, conv3d(p.input(), p.weight(), p.output(), bad_act, cpu), "[conv3d] Unknown activation code 7.");

  // The Metal kernels apply the epilogue; where no GPU exists the call is
  // refused for that reason, not for the epilogue.
  ConvParams relu;
  relu.epilogue.activation = Activation::relu;
  const Stream gpu{1, Device{DeviceType::gpu, 0}};
  if (!unavailable_reason(gpu.device).empty())
    CHECK_THROWS_HAS(IA, conv3d(p.input(), p.weight(), p.output(), relu, gpu), "[conv3d] The gpu is not available");
}

}  // namespace

int main() {
  test_values();
  test_refusals();
  return check::result("test_epilogue");
}
