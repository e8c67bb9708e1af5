// Verdict on the lane-layout self-check. The layout the kernels assume is
// what fragment_coord wrote (output [64, 128)); the GPU's real layout is
// what simdgroup_load put in each lane (output [0, 64)). They must agree,
// and the product computed through that layout must be the exact product.
#include "self_check.h"

#include <cmath>

namespace volconv::metal {

void self_check_inputs(float* input, float* weight) {
  for (int i = 0; i < kSelfCheckInputFloats; ++i) {
    input[i] = float(i);                     // A[r][c] = 8r + c: names its own cell
    weight[i] = float((i * 5 + 3) % 7 - 3);  // small integers in [-3, 3]
  }
}

std::string self_check_failure(const float* output) {
  float a[kSelfCheckInputFloats], b[kSelfCheckInputFloats];
  self_check_inputs(a, b);
  const auto cell = [](float v) { return "(" + std::to_string(int(v) / 8) + ", " + std::to_string(int(v) % 8) + ")"; };
  bool claimed[kSelfCheckInputFloats] = {};
  for (int lane = 0; lane < kSelfCheckThreads; ++lane) {
    const float row = output[64 + 2 * lane], col = output[64 + 2 * lane + 1];
    if (!(row >= 0 && row < 8 && col >= 0 && col < 7) || row != std::floor(row) || col != std::floor(col))
      return "fragment_coord gave lane " + std::to_string(lane) + " no valid cell";
    for (int e = 0; e < 2; ++e) {
      bool& seen = claimed[int(row) * 8 + int(col) + e];
      if (seen) return "fragment_coord gives cell " + cell(row * 8 + col + e) + " to two lanes";
      seen = true;
    }
    for (int e = 0; e < 2; ++e) {
      const float want = a[int(row) * 8 + int(col) + e];
      const float got = output[2 * lane + e];
      if (got != want)
        return "simdgroup_load put element " + cell(got) + " in lane " + std::to_string(lane) + " slot " +
               std::to_string(e) + ", the kernels assume " + cell(want);
    }
  }
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) {
      double want = 0;
      for (int k = 0; k < 8; ++k) want += double(a[r * 8 + k]) * double(b[k * 8 + c]);
      const float got = output[128 + r * 8 + c];
      if (double(got) != want)
        return "the simdgroup product through fragment_coord has " + std::to_string(got) + " at (" +
               std::to_string(r) + ", " + std::to_string(c) + "), the exact product " + std::to_string(want);
    }
  return "";
}

}  // namespace volconv::metal
