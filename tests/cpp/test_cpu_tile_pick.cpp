// The CPU planner's machine-dependent choices, asked with the machine's
// facts passed in, so they run on any CPU: which AVX-512 tile set measured
// FMA rates pick (cpu_features.h), Winograd's many-CPU rule, and the tiles a
// two-FMA set's plans take (conv3d_plan.cpp). The expected answers come from
// the device host's measurements quoted beside each rule, not from the code.
#include <string>

#include "../../csrc/cpu/conv3d_plan.h"
#include "../../csrc/cpu/cpu_features.h"
#include "check.h"

using namespace volconv;

namespace {

void test_fma_rates_pick_the_tile_set() {
  // The 16-core Xeon measured 164 GFLOP/s at 512 bits and 89 at 256 (two
  // 512-bit pipes); Zen 4 splits a 512-bit FMA over its 256-bit pipes (the
  // same flops at both widths); an Intel part with one 512-bit unit fuses
  // its two 256-bit ones (the same again).
  CHECK(cpu::prefers_two_fma_tiles({164.4, 88.8}));
  CHECK(!cpu::prefers_two_fma_tiles({120.0, 118.0}));
  CHECK(!cpu::prefers_two_fma_tiles({95.0, 100.0}));
  CHECK(!cpu::prefers_two_fma_tiles({0.0, 0.0}));  // no AVX-512: nothing measured
  CHECK(!cpu::prefers_two_fma_tiles({140.0, 100.0}));
  CHECK(cpu::prefers_two_fma_tiles({150.0, 100.0}));
}

struct Conv {
  Shape5 input;
  std::int64_t c_out, groups;
  Int3 stride{1, 1, 1};
};

ConvGeometry geometry(const Conv& c) {
  const Shape5 w{c.c_out, 3, 3, 3, c.input[4] / c.groups};
  return make_conv_geometry(c.input, w, check::conv_params(c.stride, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, c.groups));
}

// A table that says it is an AVX-512 set: the planner reads only its names,
// tiles and which kernels exist; nothing here runs a kernel.
cpu::KernelTable table_named(const char* isa) {
  cpu::KernelTable kt = cpu::active_kernels();
  kt.isa = isa;
  return kt;
}

// The bench's shapes l and n (0.98x / 0.97x of the igemm's speed under
// Winograd on 16 Xeon threads), c and a (1.22x / 1.46x).
const Conv kL{{1, 8, 32, 32, 128}, 128, 4}, kN{{8, 8, 8, 8, 64}, 64, 1};
const Conv kC{{2, 32, 32, 32, 32}, 32, 1}, kA{{1, 16, 56, 56, 64}, 64, 1};
const Conv kTiny{{1, 4, 8, 8, 16}, 16, 1};

void test_winograd_rule() {
  const cpu::KernelTable avx512 = table_named("avx512f-2fma"), avx2 = table_named("avx2");
  CHECK(!cpu::winograd_pays(geometry(kL), avx512, 16));
  CHECK(!cpu::winograd_pays(geometry(kN), avx512, 16));
  CHECK(cpu::winograd_pays(geometry(kC), avx512, 16));
  CHECK(cpu::winograd_pays(geometry(kA), avx512, 16));
  // Only on AVX-512, and only on machines of many CPUs.
  CHECK(cpu::winograd_pays(geometry(kL), avx2, 16));
  CHECK(cpu::winograd_pays(geometry(kN), avx512, 2));
  CHECK(cpu::winograd_pays(geometry(kTiny), avx512, 4));
  CHECK(!cpu::winograd_pays(geometry(kTiny), avx512, 8));
  // By the machine's CPUs: n's 453M multiply-adds over 8 CPUs are 57M each.
  CHECK(!cpu::winograd_pays(geometry(kN), avx512, 8));
}

cpu::CpuPlan plan(const Conv& c, const cpu::KernelTable& kt) {
  const ConvGeometry g = geometry(c);
  const Shape5 w{c.c_out, 3, 3, 3, c.input[4] / c.groups};
  const ConstTensorView in{nullptr, DType::float32, c.input, contiguous_strides(c.input)};
  const ConstTensorView wv{nullptr, DType::float32, w, contiguous_strides(w)};
  TensorView out;
  out.dtype = DType::float32;
  out.shape = g.output_shape();
  out.strides = contiguous_strides(out.shape);
  return cpu::plan_conv3d(detail::ConvCall{g, in, wv, out}, kt, cpu::planning_caches());
}

void test_plans_follow_the_rule() {
  const cpu::KernelTable avx512 = table_named("avx512f-2fma");
  cpu::testing::override_cpus(16);
  CHECK(plan(kN, avx512).path == cpu::CpuPath::igemm);
  CHECK(plan(kL, avx512).path == cpu::CpuPath::igemm);
  CHECK(plan(kC, avx512).path == cpu::CpuPath::winograd);
  cpu::testing::override_cpus(2);
  CHECK(plan(kN, avx512).path == cpu::CpuPath::winograd);
  CHECK(plan(kL, avx512).path == cpu::CpuPath::winograd);
  cpu::testing::override_cpus(0);
}

// The -2fma tiles' shape (kernels-avx512f.cpp), on any machine's kernels.
cpu::KernelTable two_fma_like() {
  cpu::KernelTable kt = table_named("avx512f-2fma");
  const cpu::IgemmFn fn = kt.f32_igemm[0].fn;
  kt.n_f32_igemm = 4;
  kt.f32_igemm[0] = {12, 16, fn, "t-12x16"};
  kt.f32_igemm[1] = {14, 32, fn, "t-14x32"};
  kt.f32_igemm[2] = {8, 48, fn, "t-8x48"};
  kt.f32_igemm[3] = {6, 64, fn, "t-6x64"};
  kt.f32_conv_cin1 = {16, kt.f32_conv_cin1.fn, "t-cin1-16"};
  kt.f32_conv_cin1_wide = {32, kt.f32_conv_cin1.fn, "t-cin1-32"};
  kt.f32_conv_cin1_narrow = {8, kt.f32_conv_cin1.fn, "t-cin1-8"};
  // No pairs kernel: where the machine's set has one it replaces the narrow
  // rows these rules are about (cin1_pairs: test_cpu_paths).
  kt.f32_conv_cin1_pairs = {};
  kt.winograd_tall_tiles = 1;
  return kt;
}

void test_two_fma_tiles() {
  cpu::testing::override_cpus(2);
  cpu::KernelTable kt = two_fma_like();
  // Winograd's GEMMs: the tallest tile of the least waste (4x8x28x28 x 256:
  // 14x32 1.2x over 6x64 on the Xeon) ...
  CHECK_EQ(std::string(plan({{4, 8, 28, 28, 256}, 256, 1}, kt).kernel), "t-14x32");
  CHECK_EQ(std::string(plan(kA, kt).kernel), "t-14x32");
  CHECK_EQ(std::string(plan({{1, 8, 12, 12, 32}, 48, 1}, kt).kernel), "t-12x16");
  // ... the direct igemm: the widest (strided 64 -> 128 stays on 6x64).
  CHECK_EQ(std::string(plan({{1, 16, 56, 56, 64}, 128, 1, {2, 2, 2}}, kt).kernel), "t-6x64");
  kt.winograd_tall_tiles = 0;
  CHECK_EQ(std::string(plan(kA, kt).kernel), "t-6x64");
  // One input channel (the stem conv): 32 lanes past 16 output channels.
  kt = two_fma_like();
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 64, 1}, kt).kernel), "t-cin1-32");
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 17, 1}, kt).kernel), "t-cin1-32");
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 1}, 16, 1}, kt).kernel), "t-cin1-16");
  kt.f32_conv_cin1_wide = {};
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 64, 1}, kt).kernel), "t-cin1-16");
  cpu::testing::override_cpus(0);
}

// The narrow row kernel: up to its 8 output channels, for up to 8 input
// channels from 5 output channels on (2x17x23x29, C_in 5 -> 7); C_out 1-4
// stays small-C_out's, 9+ input channels or 9+ output channels the GEMMs'.
void test_narrow_rows() {
  cpu::KernelTable kt = two_fma_like();
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 8, 1}, kt).kernel), "t-cin1-8");
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 9, 1}, kt).kernel), "t-cin1-16");
  CHECK_EQ(std::string(plan({{2, 17, 23, 29, 5}, 7, 1}, kt).kernel), "t-cin1-8");
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 8}, 5, 1}, kt).kernel), "t-cin1-8");
  CHECK(plan({{1, 8, 20, 20, 5}, 9, 1}, kt).path == cpu::CpuPath::fold_w);
  CHECK(plan({{1, 8, 20, 20, 9}, 8, 1}, kt).path == cpu::CpuPath::igemm);
  CHECK(plan({{1, 8, 20, 20, 5}, 4, 1}, kt).path == cpu::CpuPath::small_cout);
  kt.f32_conv_cin1_narrow = {};
  CHECK(plan({{2, 17, 23, 29, 5}, 7, 1}, kt).path == cpu::CpuPath::fold_w);
  CHECK_EQ(std::string(plan({{1, 8, 20, 20, 3}, 8, 1}, kt).kernel), "t-cin1-16");
}

}  // namespace

int main() {
  test_fma_rates_pick_the_tile_set();
  test_winograd_rule();
  test_plans_follow_the_rule();
  test_two_fma_tiles();
  test_narrow_rows();
  return check::result("test_cpu_tile_pick");
}
