// Runs a 3-D convolution through volconv's C++ API and checks it against a
// plain loop. Exits non-zero on a mismatch.
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include <volconv/volconv.h>

int main() {
  // A batch of 2 volumes 8x8x8 with 4 channels (NDHWC), 6 filters 3x3x3 in
  // 2 groups, stride 2 in depth, one voxel of zero padding all round.
  const volconv::Shape5 in_shape{2, 8, 8, 8, 4};
  const volconv::Shape5 wt_shape{6, 3, 3, 3, 2};  // (C_out, KD, KH, KW, C_in / groups)
  volconv::ConvParams params;
  params.stride = {2, 1, 1};
  params.padding_lo = {1, 1, 1};
  params.padding_hi = {1, 1, 1};
  params.groups = 2;

  // Validates like Python's volconv.conv3d; bad arguments throw std::invalid_argument.
  volconv::Shape5 out_shape;
  try {
    out_shape = volconv::conv3d_output_shape(in_shape, wt_shape, params);  // (2,4,8,8,6)
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "bad arguments: %s\n", e.what());
    return 1;
  }

  auto count = [](const volconv::Shape5& s) { return std::size_t(s[0] * s[1] * s[2] * s[3] * s[4]); };
  std::vector<float> x(count(in_shape)), w(count(wt_shape)), y(count(out_shape));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) - 3.0f;
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = float(i % 5) * 0.25f - 0.5f;

  // Views are non-owning: pointer, dtype, shape and strides (in elements).
  const auto input = volconv::ConstTensorView::contiguous(x.data(), volconv::DType::float32, in_shape);
  const auto weight = volconv::ConstTensorView::contiguous(w.data(), volconv::DType::float32, wt_shape);
  const auto output = volconv::TensorView::contiguous(y.data(), volconv::DType::float32, out_shape);

  // Run on the CPU; pass default_stream(Device{DeviceType::gpu, 0}) for Metal.
  const volconv::Stream stream = volconv::default_stream(volconv::Device{volconv::DeviceType::cpu, 0});
  volconv::conv3d(input, weight, output, params, stream);
  volconv::synchronize(stream);

  // The same convolution as a loop.
  const std::int64_t cin_g = wt_shape[4], cout_g = wt_shape[0] / params.groups;
  double max_err = 0;
  std::size_t k = 0;
  for (std::int64_t n = 0; n < out_shape[0]; ++n)
    for (std::int64_t od = 0; od < out_shape[1]; ++od)
      for (std::int64_t oh = 0; oh < out_shape[2]; ++oh)
        for (std::int64_t ow = 0; ow < out_shape[3]; ++ow)
          for (std::int64_t co = 0; co < out_shape[4]; ++co, ++k) {
            double sum = 0;
            for (std::int64_t kd = 0; kd < 3; ++kd)
              for (std::int64_t kh = 0; kh < 3; ++kh)
                for (std::int64_t kw = 0; kw < 3; ++kw) {
                  const std::int64_t id = od * 2 - 1 + kd, ih = oh - 1 + kh, iw = ow - 1 + kw;
                  if (id < 0 || id >= 8 || ih < 0 || ih >= 8 || iw < 0 || iw >= 8) continue;
                  for (std::int64_t ci = 0; ci < cin_g; ++ci) {
                    const std::int64_t c = (co / cout_g) * cin_g + ci;
                    sum += double(x[std::size_t((((n * 8 + id) * 8 + ih) * 8 + iw) * 4 + c)]) *
                           double(w[std::size_t((((co * 3 + kd) * 3 + kh) * 3 + kw) * cin_g + ci)]);
                  }
                }
            max_err = std::fmax(max_err, std::fabs(double(y[k]) - sum));
          }

  // Bad arguments throw before any work, with the messages Python shows.
  try {
    params.groups = 3;
    volconv::conv3d(input, weight, output, params, stream);
    std::printf("expected an exception for groups=3\n");
    return 1;
  } catch (const std::invalid_argument& e) {
    std::printf("bad call refused: %s\n", e.what());
  }

  std::printf("volconv %s: output (%lld,%lld,%lld,%lld,%lld), max |error| %g\n", volconv::version,
              (long long)out_shape[0], (long long)out_shape[1], (long long)out_shape[2], (long long)out_shape[3],
              (long long)out_shape[4], max_err);
  if (max_err > 1e-4) {
    std::printf("MISMATCH\n");
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
