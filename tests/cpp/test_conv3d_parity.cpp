// conv3d against a direct-loop float64 reference written here, independently
// of the library: a handful of geometries (groups, dilation, strides,
// asymmetric padding) in every dtype, mixed dtypes, and strided views.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "conv_reference.h"

using namespace volconv;
using namespace conv_reference;

namespace {

const Geometry kGeometries[] = {
    // name, input (N,D,H,W,C), C_out, kernel, stride, pad lo, pad hi, dilation, groups
    {"basic", {1, 5, 6, 7, 3}, 4, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1},
    {"strided_asym_pad", {2, 7, 6, 5, 4}, 6, {3, 2, 3}, {2, 1, 3}, {1, 0, 2}, {0, 1, 1}, {1, 1, 1}, 1},
    {"dilated", {1, 9, 8, 7, 2}, 3, {2, 3, 2}, {1, 1, 1}, {2, 1, 0}, {1, 2, 0}, {3, 2, 1}, 1},
    {"groups", {2, 4, 5, 6, 6}, 9, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 3},
    {"depthwise_dilated", {1, 5, 5, 5, 4}, 8, {3, 3, 3}, {1, 1, 1}, {2, 2, 2}, {2, 2, 2}, {2, 2, 2}, 4},
    {"pointwise_stride2", {3, 4, 4, 5, 5}, 7, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}, {0, 0, 0}, {1, 1, 1}, 1},
    {"kernel_fills_padded_input", {1, 3, 3, 3, 2}, 2, {4, 4, 4}, {1, 1, 1}, {1, 0, 1}, {0, 1, 0}, {1, 1, 1}, 1},
    {"everything", {2, 6, 7, 5, 6}, 4, {2, 3, 2}, {2, 1, 2}, {0, 2, 1}, {1, 0, 2}, {2, 1, 3}, 2},
    // A panel far larger than L2 (64 taps x 128 channels): the igemm walks it
    // in chunks of taps over strips of M tiles.
    {"chunked_panel", {1, 4, 4, 4, 128}, 16, {4, 4, 4}, {1, 1, 1}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 1},
};

int run_all_cases() {
  const DType all[] = {DType::float16, DType::bfloat16, DType::float32, DType::float64};
  std::uint32_t seed = 1;
  int cases = 0;
  for (const Geometry& g : kGeometries) {
    for (DType t : all) {
      run_case(g, t, t, Layout::contiguous, Layout::contiguous, Layout::contiguous, false, seed++);
      ++cases;
    }
    // Mixed dtypes: the output is the promotion.
    run_case(g, DType::float16, DType::bfloat16, Layout::contiguous, Layout::contiguous, Layout::contiguous, false,
             seed++);
    run_case(g, DType::bfloat16, DType::float32, Layout::contiguous, Layout::contiguous, Layout::contiguous, false,
             seed++);
    run_case(g, DType::float64, DType::float16, Layout::contiguous, Layout::contiguous, Layout::contiguous, false,
             seed++);
    // Strided views of every kind, for input, weight and output.
    run_case(g, DType::float32, DType::float32, Layout::padded, Layout::permuted, Layout::padded, false, seed++);
    run_case(g, DType::float16, DType::float16, Layout::reversed, Layout::padded, Layout::permuted, false, seed++);
    run_case(g, DType::bfloat16, DType::bfloat16, Layout::permuted, Layout::reversed, Layout::reversed, false,
             seed++);
    // Every element misaligned, in every operand.
    for (DType t : all) {
      run_case(g, t, t, Layout::misaligned, Layout::misaligned, Layout::misaligned, false, seed++);
      ++cases;
    }
    // Full-mantissa values.
    run_case(g, DType::float32, DType::float32, Layout::contiguous, Layout::contiguous, Layout::contiguous, true,
             seed++);
    run_case(g, DType::float64, DType::float64, Layout::padded, Layout::contiguous, Layout::reversed, true, seed++);
    cases += 8;
  }
  return cases;
}

}  // namespace

// Every case on every kernel set this CPU runs (CI runs this binary under
// AddressSanitizer and UndefinedBehaviorSanitizer).
int main() {
  int cases = 0;
  const std::vector<std::string> isas = cpu::supported_isas();
  for (const std::string& isa : isas) {
    cpu::force_isa(isa);
    cases = run_all_cases();
  }
  cpu::force_isa("");
  std::printf("test_conv3d_parity: %d cases over %d geometries on %d kernel sets\n", cases,
              int(sizeof(kGeometries) / sizeof(*kGeometries)), int(isas.size()));
  return check::result("test_conv3d_parity");
}
