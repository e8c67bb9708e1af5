// volconv_error_message: runs one conv3d call given on the command line and
// prints what the C++ API answers, so tests/test_cpp_library.py can check
// that Python shows the very same message for the same call.
//   volconv_error_message N D H W C  CO KD KH KW CI  sd sh sw  lo(3) hi(3) dil(3) groups
// prints "ok (N,Do,Ho,Wo,CO)" or "invalid_argument: <message>".
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "volconv/volconv.h"

using namespace volconv;

int main(int argc, char** argv) {
  if (argc != 24) {
    std::fprintf(stderr, "usage: %s <23 integers: input(5) weight(5) stride(3) lo(3) hi(3) dilation(3) groups>\n",
                 argv[0]);
    return 2;
  }
  std::int64_t v[23];
  for (int i = 0; i < 23; ++i) v[i] = std::strtoll(argv[i + 1], nullptr, 10);
  const Shape5 in{v[0], v[1], v[2], v[3], v[4]}, wt{v[5], v[6], v[7], v[8], v[9]};
  ConvParams p;
  p.stride = {v[10], v[11], v[12]};
  p.padding_lo = {v[13], v[14], v[15]};
  p.padding_hi = {v[16], v[17], v[18]};
  p.dilation = {v[19], v[20], v[21]};
  p.groups = v[22];
  try {
    // What Python does: the output shape first, then the call itself.
    const Shape5 out = conv3d_output_shape(in, wt, p);
    auto count = [](const Shape5& s) {
      std::size_t n = 1;
      for (auto d : s) n *= std::size_t(d);
      return n;
    };
    std::vector<float> x(count(in) + 1), w(count(wt) + 1), y(count(out) + 1);
    conv3d(ConstTensorView::contiguous(x.data(), DType::float32, in),
           ConstTensorView::contiguous(w.data(), DType::float32, wt),
           TensorView::contiguous(y.data(), DType::float32, out), p, default_stream(Device{DeviceType::cpu, 0}));
    std::printf("ok (%lld,%lld,%lld,%lld,%lld)\n", (long long)out[0], (long long)out[1], (long long)out[2],
                (long long)out[3], (long long)out[4]);
  } catch (const std::invalid_argument& e) {
    std::printf("invalid_argument: %s\n", e.what());
  }
  return 0;
}
