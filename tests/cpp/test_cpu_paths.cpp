// Every path and tile of every CPU kernel set this machine can run (each ISA
// forced in turn; on aarch64 under qemu: neon and generic), in fp32, fp16
// and bf16 (float64 on the direct path), against the float64 reference loop
// of conv_reference.h. Each case states the path it is meant to reach and
// the planner (cpu::testing::plan) must agree; per ISA the cases together
// must reach every kernel of the table. Prints what each ISA reached.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../../csrc/cpu/conv3d_plan.h"
#include "conv_reference.h"
#include "volconv/cpu.h"

using namespace volconv;
using namespace conv_reference;

namespace {

// The reference sizes the cases' chunking assertions are written for: with
// a 1 MiB L2 the budgets are the values the kernels were tuned with.
constexpr cpu::platform::CacheSizes kReferenceCaches{32 << 10, 1 << 20, 8 << 20};

struct Template {
  const char* path;  // the path this case is meant to reach
  Geometry g;        // c_out is swept to reach each tile of the path's family
  DType tx, tw;
  Layout lx = Layout::contiguous;
  std::int64_t min_cout = 1;  // the sweep's C_out range (C_out <= 4 per group is small-cout's)
  std::int64_t max_cout = 64;
};

cpu::CpuPlan plan_of(const Geometry& g, DType tx, DType tw, Layout lx) {
  const Shape5 wshape{g.c_out, g.kernel[0], g.kernel[1], g.kernel[2], g.input[4] / g.groups};
  const Array x = make_array(tx, g.input, lx);
  const ConstTensorView xv{nullptr, tx, x.shape, x.strides};
  const ConstTensorView wv{nullptr, tw, wshape, contiguous_strides(wshape)};
  return cpu::testing::plan(xv, wv, check::conv_params(g.stride, g.pad_lo, g.pad_hi, g.dilation, g.groups));
}

// input (N,D,H,W,C), C_out, kernel, stride, pad lo, pad hi, dilation, groups.
Geometry geo(const char* name, Shape5 input, std::int64_t c_out, Int3 k, std::int64_t groups = 1,
             Int3 stride = {1, 1, 1}, Int3 dil = {1, 1, 1}) {
  return Geometry{name, input, c_out, k, stride, {1, 1, 1}, {1, 0, 1}, dil, groups};
}

std::vector<Template> templates(const std::string& isa) {
  const DType f32 = DType::float32, f16 = DType::float16, bf16 = DType::bfloat16, f64 = DType::float64;
  std::vector<Template> t;
  // In-place igemm: f32 input, C_in/group > 4 (> 8 here: few-cin takes up to 8 at C_out <= 8 on AVX2),
  // contiguous channels, C_out/group > 4;
  // weights of every dtype.
  const Layout c = Layout::contiguous;
  for (DType tw : {f32, f16, bf16})
    t.push_back({"igemm", geo("igemm", {2, 3, 4, 7, 9}, 0, {3, 3, 3}), f32, tw, c, 5});
  t.push_back({"igemm", geo("igemm_groups_strided", {1, 4, 5, 9, 12}, 0, {2, 3, 3}, 2, {1, 2, 2}), f32, f32, c, 10});
  t.push_back({"igemm", geo("pointwise", {2, 3, 3, 5, 24}, 0, {1, 1, 1}), f32, f32, c, 5});
  // Winograd F(2x2x2, 3x3x3): f32 input, 3x3x3 at stride and dilation 1, 16+ channels per group;
  // odd output sizes (partial tiles), asymmetric padding, groups.
  for (DType tw : {f32, f16, bf16})
    t.push_back({"winograd", geo("winograd", {2, 5, 4, 7, 16}, 0, {3, 3, 3}), f32, tw, c, 16});
  t.push_back({"winograd", geo("winograd_groups", {1, 4, 5, 6, 34}, 0, {3, 3, 3}, 2), f32, f32, c, 32});
  // Few output channels (1-4 per group), C_in/group >= 2: the row kernel with the reduction in the lanes;
  // the W window one run (contiguous), tap by tap (W dilation), C_in tails, groups.
  for (DType tw : {f32, f16, bf16})
    t.push_back({"small-cout", geo("small_cout", {2, 3, 4, 15, 16}, 0, {3, 3, 3}), f32, tw, c, 1, 4});
  t.push_back({"small-cout", geo("small_cout_dilated_w", {1, 3, 4, 14, 9}, 0, {3, 3, 3}, 1, {1, 1, 2}, {1, 1, 2}),
               f32, f32, c, 1, 4});
  t.push_back({"small-cout", geo("small_cout_groups", {1, 3, 4, 11, 27}, 0, {3, 3, 3}, 3), f32, f32, c, 1, 12});
  // bf16 x bf16 with an even C_in: vdpbf16ps where the ISA has it, else gathered rows (C_out 9+: up to 8
  // the row paths below take 16-bit inputs too).
  t.push_back({isa.rfind("avx512bf16", 0) == 0 ? "igemm" : "packed-a", geo("bf16_even", {1, 3, 4, 7, 8}, 0, {3, 3, 3}), bf16,
               bf16, c, 9});
  // Gathered rows: fp16/bf16 inputs (odd C_in).
  for (DType tx : {f16, bf16}) t.push_back({"packed-a", geo("packed_a", {1, 3, 4, 7, 7}, 0, {3, 3, 3}), tx, tx, c, 9});
  // The row paths with 16-bit inputs, converted to fp32 rows once per thread: float16 / bfloat16 results
  // (rounded once at the store) and float32 ones (16-bit input, f32 weight).
  for (DType tw : {f16, bf16, f32}) {
    const DType tx = tw == f32 ? bf16 : tw;
    t.push_back({"small-cout", geo("small_cout_16bit", {2, 3, 4, 15, 16}, 0, {3, 3, 3}), tx, tw, c, 1, 4});
    t.push_back({"few-cin", geo("cin3_16bit", {1, 3, 4, 15, 3}, 0, {3, 3, 3}, 1, {1, 1, 2}), tx, tw});
    t.push_back({"dwconv", geo("dwconv_16bit", {1, 3, 4, 9, 20}, 0, {3, 3, 3}, 20), tx, tw});
  }
  t.push_back({"small-cout", geo("small_cout_16bit_groups", {1, 3, 4, 11, 27}, 0, {3, 3, 3}, 3), f16, f16, c, 1, 12});
  // f32 with strided channels: copied to contiguous first, then read in place.
  t.push_back({"igemm", geo("strided_c_relaid", {1, 3, 4, 6, 9}, 0, {3, 2, 3}), f32, f32, Layout::padded, 5});
  // Small C_in: taps folded into K, k-major tiles along W.
  // (16-bit inputs with groups 1 and C_in <= 4 take few-cin's rows: groups 2 here.)
  for (DType tx : {f16, bf16})
    t.push_back({"small-cin", geo("small_cin", {1, 3, 4, 11, 4}, 0, {3, 3, 3}, 2), tx, tx, c, 10});
  // Up to 64 channels a group: the widest AVX-512 GEMM tiles (8x48, 6x64).
  t.push_back({"small-cin", geo("small_cin_groups", {1, 3, 4, 10, 4}, 0, {3, 3, 3}, 2), f32, f32, c, 10, 128});
  t.push_back({"small-cin", geo("small_cin_dilated_w", {1, 3, 4, 12, 4}, 0, {3, 3, 3}, 2, {1, 1, 1}, {1, 1, 2}),
               f32, f32, c, 10});
  // The W window folded into K (KW * C_in >= 8).
  // C_out 5-8 there: few-cin where the ISA has a narrow row kernel (below).
  for (DType tw : {f32, f16, bf16})
    t.push_back({"fold-w", geo("fold_w", {1, 3, 5, 13, 5}, 0, {3, 3, 3}, 1, {1, 2, 2}), f32, tw, c, 9});
  // Up to 4 input channels: the row kernel with C_out in the lanes, a row per (kd, kh, ci).
  for (DType tw : {f32, f16, bf16}) t.push_back({"few-cin", geo("cin1", {2, 3, 4, 15, 1}, 0, {3, 3, 3}), f32, tw});
  t.push_back({"few-cin", geo("cin3_strided_w", {1, 3, 4, 15, 3}, 0, {3, 3, 3}, 1, {1, 1, 2}, {1, 1, 2}), f32, f32});
  // 5-8 input channels, C_out 5-8: the narrow row kernel where the ISA has one (x86), else W folded into K.
  const char* narrow_path = isa == "neon" || isa == "generic" ? "fold-w" : "few-cin";
  for (DType tw : {f32, bf16})
    t.push_back({narrow_path, geo("cin5_narrow", {2, 3, 4, 17, 5}, 0, {3, 3, 3}, 1, {1, 1, 1}, {1, 1, 1}), f32, tw, c,
                 5, 8});
  t.push_back(
      {narrow_path, geo("cin7_narrow_strided", {1, 3, 4, 16, 7}, 0, {3, 3, 3}, 1, {1, 1, 2}), f32, f32, c, 5, 8});
  // 16-bit inputs: rows where the ISA has the narrow kernel, else gathered rows (fold-W reads f32 in place).
  t.push_back({narrow_path == std::string("fold-w") ? "packed-a" : "few-cin",
               geo("cin6_narrow_16bit", {1, 3, 4, 17, 6}, 0, {3, 3, 3}), f16, f16, c, 5, 8});
  // Depthwise: groups == C_in == C_out (c_out 0 here means "C_in").
  for (DType tw : {f32, f16, bf16}) t.push_back({"dwconv", geo("dwconv", {1, 3, 4, 9, 20}, 0, {3, 3, 3}, 20), f32, tw});
  t.push_back({"dwconv", geo("dwconv_k5_strided", {1, 4, 5, 12, 9}, 0, {3, 3, 5}, 9, {1, 1, 2}), f32, f32});
  // float64 output: the direct loop.
  for (DType tw : {f64, f32}) t.push_back({"direct", geo("direct", {1, 3, 4, 6, 5}, 0, {3, 3, 3}), f64, tw});
  return t;
}

struct Reached {
  std::set<std::string> kernels;
  std::map<std::string, std::set<std::string>> by_path;  // path -> kernels
  int cases = 0;
};

void run_template(const std::string& isa, const Template& t, Reached& reached) {
  const bool depthwise = std::string(t.path) == "dwconv";
  // C_out 1..40 and 64: every NR (and its tails) of every ISA's families.
  std::vector<std::int64_t> couts;
  for (std::int64_t c = 1; c <= 40; ++c) couts.push_back(c);
  couts.push_back(64);
  // Two groups: 48 and 64 channels a group, the widest AVX-512 tiles' NR
  // (small-cin's gathered GEMMs are reached only through groups; a
  // template's max_cout says whether it sweeps them).
  if (t.g.groups == 2) {
    couts.push_back(96);
    couts.push_back(128);
  }
  if (depthwise || std::string(t.path) == "direct") couts = {t.g.input[4]};
  std::map<std::string, std::vector<std::int64_t>> per_kernel;
  for (std::int64_t co : couts) {
    if (co % t.g.groups != 0 || co < t.min_cout || co > t.max_cout) continue;
    Geometry g = t.g;
    g.c_out = co;
    const cpu::CpuPlan plan = plan_of(g, t.tx, t.tw, t.lx);
    const std::string got = cpu::path_name(plan.path);
    if (got != t.path) {
      check::fail(__FILE__, __LINE__,
                  isa + " " + g.name + " C_out " + std::to_string(co) + " " + dtype_name(t.tx) + "*" +
                      dtype_name(t.tw) + ": planned " + plan.describe() + ", meant for " + t.path);
      return;
    }
    const std::string kernel = plan.kernel;
    // The forced ISA's kernels run (avx512bf16 shares avx512f's f32 kernels;
    // a "-2fma" tile set is its ISA's, by the ISA's kernels' names).
    const std::string unit = isa.substr(0, isa.find('-'));
    const bool own = got == "direct" || kernel.size() >= unit.size() &&
                                            (kernel.compare(kernel.size() - unit.size(), unit.size(), unit) == 0 ||
                                             (unit == "avx512bf16" && kernel.find("avx512f") != std::string::npos));
    if (!own) check::fail(__FILE__, __LINE__, isa + ": planned kernel " + kernel + " of another ISA");
    per_kernel[kernel].push_back(co);
  }
  // Per kernel: the smallest and largest C_out reaching it (a full block and a tail).
  std::uint32_t seed = 7;
  for (const auto& [kernel, cs] : per_kernel) {
    for (std::int64_t co : {cs.front(), cs.back()}) {
      Geometry g = t.g;
      g.c_out = co;
      const Layout lw = Layout::contiguous, ly = Layout::contiguous;
      run_case(g, t.tx, t.tw, t.lx, lw, ly, false, seed++);
      if (t.tx != DType::float16 && t.tx != DType::bfloat16 && t.tw == t.tx) run_case(g, t.tx, t.tw, t.lx, lw, ly, true, seed++);
      reached.cases += 1;
      if (cs.size() == 1) break;
    }
    reached.kernels.insert(kernel);
    reached.by_path[t.path].insert(kernel.empty() ? "(float64 loop)" : kernel);
  }
}

// Chunked K and the other work orders, with the reference cache sizes.
struct OrderCase {
  const char* what;
  Geometry g;
  DType dtype;
  bool (*holds)(const cpu::CpuPlan&);
};

void run_orders(const std::string& isa) {
  cpu::testing::override_caches(kReferenceCaches);
  cpu::set_winograd(false);  // the 3x3x3 cases are written for the igemm's orders
  const OrderCase cases[] = {
      {"packed-a, K in chunks", geo("packed_a_chunks", {1, 3, 3, 5, 256}, 20, {3, 3, 3}), DType::float16,
       [](const cpu::CpuPlan& p) { return p.path == cpu::CpuPath::packed_a && p.k_chunks > 1; }},
      {"small-cin, K in chunks", geo("small_cin_chunks", {1, 13, 13, 14, 8}, 18, {12, 12, 12}, 2), DType::bfloat16,
       [](const cpu::CpuPlan& p) { return p.path == cpu::CpuPath::small_cin && p.k_chunks > 1; }},
      {"igemm, panel in chunks over strips", geo("panel_chunks", {1, 2, 2, 4, 640}, 64, {3, 3, 3}), DType::float32,
       [](const cpu::CpuPlan& p) { return p.path == cpu::CpuPath::igemm && p.k_chunks > 1 && !p.m_outer; }},
      {"igemm, NR blocks inside the M loop", geo("m_outer", {2, 3, 5, 7, 24}, 72, {3, 3, 3}), DType::float32,
       [](const cpu::CpuPlan& p) { return p.path == cpu::CpuPath::igemm && p.m_outer && p.k_chunks == 1; }},
  };
  for (const OrderCase& c : cases) {
    const cpu::CpuPlan plan = plan_of(c.g, c.dtype, c.dtype, Layout::contiguous);
    if (!c.holds(plan)) {
      check::fail(__FILE__, __LINE__,
                  isa + " " + c.what + ": planned " + plan.describe() + " k_chunks " + std::to_string(plan.k_chunks) +
                      (plan.m_outer ? " m_outer" : ""));
      continue;
    }
    run_case(c.g, c.dtype, c.dtype, Layout::contiguous, Layout::contiguous, Layout::contiguous, false, 11);
    std::printf("  %s: %s, %lld K chunks\n", c.what, plan.describe().c_str(), (long long)plan.k_chunks);
  }
  cpu::set_winograd(true);
  cpu::testing::override_caches({});
}

// Cache sizes change how a plan visits tiles, never what a sum adds in which
// order: results are bit-identical across the L2 sizes a machine may report
// (1 MiB: K in chunks; 16 MiB: one pass, f32 with every NR block per tile).
void check_cache_independence(const std::string& isa) {
  const Geometry g = geo("cache_independent", {1, 2, 3, 5, 640}, 24, {3, 3, 3});
  std::vector<std::vector<unsigned char>> results;
  std::vector<std::int64_t> chunks;
  cpu::set_winograd(false);  // the igemm's chunking (winograd: tests/test_winograd.py)
  for (std::int64_t l2 : {std::int64_t(1) << 20, std::int64_t(16) << 20}) {
    cpu::testing::override_caches({32 << 10, l2, 8 << 20});
    for (DType t : {DType::float32, DType::float16}) {
      Array x = make_array(t, g.input, Layout::contiguous);
      const Shape5 ws{g.c_out, 3, 3, 3, g.input[4]};
      Array w = make_array(t, ws, Layout::contiguous);
      std::mt19937 rng(5);
      std::uniform_real_distribution<double> u(-1, 1);
      for (std::int64_t i = 0; i < numel(x.shape); ++i) x.buf.set(i, u(rng));
      for (std::int64_t i = 0; i < numel(ws); ++i) w.buf.set(i, u(rng));
      const ConvParams p = check::conv_params(g.stride, g.pad_lo, g.pad_hi, g.dilation, g.groups);
      const Shape5 ys = conv3d_output_shape(g.input, ws, p);
      Array y = make_array(t, ys, Layout::contiguous);
      conv3d(ConstTensorView{x.buf.at(0), t, x.shape, x.strides}, ConstTensorView{w.buf.at(0), t, ws, w.strides},
             TensorView{y.buf.at(0), t, ys, y.strides}, p, default_stream(Device{DeviceType::cpu, 0}));
      results.push_back(y.buf.bytes);
      chunks.push_back(plan_of(g, t, t, Layout::contiguous).k_chunks);
    }
  }
  cpu::testing::override_caches({});
  cpu::set_winograd(true);
  // The 1 MiB L2 must really chunk what 16 MiB does not, or this checks nothing.
  CHECK(chunks[0] > chunks[2] && chunks[1] > chunks[3]);
  if (results[0] != results[2] || results[1] != results[3])
    check::fail(__FILE__, __LINE__, isa + ": results differ between a 1 MiB and a 16 MiB L2");
}

}  // namespace

int main() {
  // Plans as on a 2-CPU machine: the cases' paths must not depend on the
  // machine's size (Winograd's many-CPU rule, conv3d_plan.cpp).
  cpu::testing::override_cpus(2);
  for (const std::string& isa : cpu::supported_isas()) {
    cpu::force_isa(isa);
    Reached reached;
    for (const Template& t : templates(isa)) run_template(isa, t, reached);
    std::printf("%s: %d cases\n", isa.c_str(), reached.cases);
    for (const auto& [path, kernels] : reached.by_path) {
      std::string list;
      for (const std::string& k : kernels) list += (list.empty() ? "" : ", ") + k;
      std::printf("  %-9s %s\n", path.c_str(), list.c_str());
    }
    for (const std::string& k : cpu::testing::active_kernel_names())
      if (!reached.kernels.count(k)) check::fail(__FILE__, __LINE__, isa + ": no case reaches the kernel " + k);
    run_orders(isa);
    check_cache_independence(isa);
  }
  cpu::force_isa("");
  cpu::testing::override_cpus(0);
  return check::result("test_cpu_paths");
}
