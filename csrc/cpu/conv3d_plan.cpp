// The CPU planner. Paths, in the order they are tried:
//   float64 output               -> direct loop (true float64 accumulation)
//   depthwise, f32 input         -> channel-vectorised dwconv kernel
//   bf16 x bf16, even C_in/group -> vdpbf16ps igemm (CPUs with avx512_bf16)
//   f32, C_in <= 4, groups 1     -> direct row kernel, C_out in the lanes, a row per (kd, kh, ci)
//     (C_in <= 8 at C_out 5-8 where the set has a narrow one-vector row kernel)
//   f32, C_out/group <= 4, C_in/group >= 2 -> direct row kernel, C_in (x W window) in the lanes
//   f32, 3x3x3, stride 1, 16+ channels per group -> Winograd F(2x2x2, 3x3x3) (winograd_applies)
//   f32, C_in 5-7, groups 1      -> W window x C_in folded into K, read in place
//   C_in/group <= 4              -> taps folded into K, k-major gathered tile
//   f32 input                    -> f32 igemm reading the input in place
//   everything else              -> igemm on gathered, f32-converted rows
// Pointwise (1x1x1) convolutions are the igemm with one tap: a plain GEMM.
// Buffer and panel sizes follow one core's L2; they change the order in
// which tiles are visited, never the order of a sum.
#include "conv3d_plan.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string_view>

#include "conv_problem_cpu.h"
#include "conv3d_winograd.h"
#include "cpu_features.h"
#include "dw_backward.h"
#include "input_relayout.h"
#include "wgrad_bf16_dot.h"
#include "wgrad_rows.h"
#include "wgrad_gemm.h"
#include "volconv/cpu.h"

namespace volconv::cpu {
namespace {

// Below this many input channels per group a tap is too short for the row
// pointer loop; the fold-W and small-C_in paths fold taps into K instead.
constexpr std::int64_t kSmallCin = 4;
// Folding the W window into K pays when a (kd, kh) run is long enough for
// the direct kernel's per-tap cost (loading MR row pointers).
constexpr std::int64_t kFoldWMinK = 8;
// Fold W for C_in up to this too: at 5-7 channels a tap is still too short
// for the row pointer loop (2x17x23x29, C_in 5 -> 7: the indirection was
// about a third of the call). The kernel sums the same terms in the same
// order from a +0 start either way, so results are bit-identical.
constexpr std::int64_t kFoldWMaxCin = 7;
// Up to this many input channels (groups 1, f32) the row kernel with a row
// per (kd, kh, ci) beats gathering a K of taps x C_in (small-cin) and the
// folded W window (fold-w): 2x32^3 -> 16, k3, AVX2: C_in 2 7.8 -> 2.0 ms at
// 2 threads; C_in 3 / 4 7.7 -> 3.0 / 9.0 -> 3.7 ms of CPU at 1 thread.
constexpr std::int64_t kRowsMaxCin = 4;
// With one vector of output channels (the narrow row kernel) up to this many:
// 2x17x23x29, C_in 5 -> 7, AVX2, 1 thread: 1.6 ms folding W, 1.15 ms by rows.
// At C_out 16 and more, folding W stayed ahead.
constexpr std::int64_t kRowsNarrowMaxCin = 8;
// Outputs from this size on bypass the caches: well past the L2 of any core
// and the share of L3 a convolution gets, so they would be evicted before
// anyone reads them and every line written would first be read for nothing.
constexpr std::int64_t kStreamMinBytes = std::int64_t(8) << 20;
// float16 / bfloat16 inputs on the row paths: each thread converts whole
// input rows (W x C_in) into a cache of at least 2 x KD x KH + 1 rows
// (float_rows.h; plan_rows sizes it). Past this many bytes per thread for
// those rows (a very long or wide row) they keep the gathering paths, whose
// buffers do not grow with the row; a larger cache is capped at this size.
constexpr double kRowCacheMaxBytes = 8 << 20;
// The most channels a depthwise row kernel call takes (dwconv_block).
constexpr std::int64_t kDwconvMaxBlock = 64;
// C_out per group up to this takes the small-C_out row kernel (an NR-wide
// tile would leave most lanes idle), from 2 input channels per group on,
// where few-cin does not apply (groups 1, C_in <= 4: about as fast there):
// 2-4x the fold-W tile at C_in 5-7, 3-7x the small-C_in tile at C_in 2-4 with
// groups (2-core EPYC, 1x16x32x32, k3, C_out 1-4, one thread).
constexpr std::int64_t kSmallCoutMax = 4;
constexpr std::int64_t kSmallCoutMinCin = 2;
// Weight gradients with up to this many input channels per group run by
// output rows (wgrad_rows.cpp), their vectors over C_out.
constexpr std::int64_t kRowsWgradMaxCin = 32;
// Winograd F(2x2x2, 3x3x3) from these channel counts per group on: below,
// each tile's transforms and its 64 short GEMMs cost more than they save.
constexpr std::int64_t kWinogradMinCin = 16;
constexpr std::int64_t kWinogradMinCout = 16;
// ... and when at least this share of its 2x2x2 tiles' outputs exist (a
// one-deep output along an axis halves it): 64 multiplies per tile against
// 27 per output leave a margin for the transforms.
constexpr double kWinogradMinFill = 0.45;
// On AVX-512, Winograd also needs this many direct multiply-adds per CPU of
// the machine. 16-core Xeon, 16 threads, Winograd's time / the igemm's
// (isolated, median of 5): below, 8x8^3 x 64 (28M per CPU) 1.03, 1x16x32^3 x
// 32 (28M) 1.36, 1x8x28^2 x 64 (43M) 1.11, 1x8x32^2 x 128 in 4 groups (57M)
// 1.02, 1x32^3 x 32 (57M) 1.04 (but 16x8^3 x 64, 57M: 0.89); above, 113M
// and up, 0.55-0.98. Wide vectors shrink the multiplies Winograd saves while
// its transforms stay, and a problem split thin over many cores has too few
// tiles per thread to hide them. The machine's CPUs, not the call's thread
// count: a path that changed with the thread count would change the bits.
constexpr double kWinogradMinMacsPerCpu = 80e6;
// ... on machines of at least this many CPUs: at 2 threads Winograd won on
// every shape above (8x8^3 x 64: 0.77), so a small machine keeps it.
constexpr int kWinogradManyCpus = 8;

// Sizes derived from one core's L2, as fractions of it: at 1 MiB they are
// the values the kernels were tuned with (Zen 4), and a smaller L2 counts as
// 1 MiB, so detection only grows them on larger caches (Apple silicon's
// performance cores, server parts); never below what was measured.
struct CacheBudget {
  std::int64_t packed_a;     // gathered A rows per thread: a K chunk stays in L2 for every NR block
  std::int64_t all_panels;   // a group's packed weights up to this stay in L2 across NR blocks
  // NR blocks whose panels together reach up to this run per M tile on one
  // indirection: streaming panels per tile costs less than another pass over
  // the input (on the EPYC, shape h at 1 thread, best of 5 interleaved
  // runs: 73 GFLOP/s with groups of 2 blocks, 81 with 4).
  std::int64_t block_group;
  std::int64_t panel_chunk;  // a larger panel is walked in chunks of taps of about this size
  std::int64_t row_slab;     // row drivers: the KD input planes of an H block
  std::int64_t winograd_u;   // winograd: a work unit's transformed input
};

CacheBudget budget(const platform::CacheSizes& caches) {
  const std::int64_t l2 = std::clamp<std::int64_t>(caches.l2 > 0 ? caches.l2 : platform::kFallbackCaches.l2,
                                                   1 << 20, 16 << 20);
  return CacheBudget{l2 * 3 / 32, l2 / 4, l2 / 2, l2 / 4, l2 / 2, l2 / 4};
}

// The kernel whose NR wastes the fewest padded channels; the wider on ties
// (wider tiles reuse each input value for more outputs).
int choose_tile(const IgemmKernel* kernels, int n, std::int64_t cout) {
  int best = 0;
  double best_eff = -1.0;
  for (int i = 0; i < n; ++i) {
    const std::int64_t nr = kernels[i].nr;
    const double eff = double(cout) / double((cout + nr - 1) / nr * nr);
    if (eff >= best_eff - 1e-9) best = i, best_eff = std::max(best_eff, eff);
  }
  return best;
}

// Winograd's GEMM tile on sets with winograd_tall_tiles: of the kernels
// wasting the fewest padded channels, the one with the most rows.
int choose_winograd_tile(const IgemmKernel* kernels, int n, std::int64_t cout) {
  int best = 0;
  double best_eff = -1.0;
  for (int i = 0; i < n; ++i) {
    const std::int64_t nr = kernels[i].nr;
    const double eff = double(cout) / double((cout + nr - 1) / nr * nr);
    if (eff > best_eff + 1e-9 || (eff >= best_eff - 1e-9 && kernels[i].mr > kernels[best].mr))
      best = i, best_eff = std::max(best_eff, eff);
  }
  return best;
}

// The few-input-channel row kernel for C_out channels: the set's narrow one
// up to its NR, its wide one past the own kernel's NR, where the set has them.
const DwconvKernel& choose_cin1(const KernelTable& kt, std::int64_t cout) {
  if (kt.f32_conv_cin1_narrow.fn != nullptr && cout <= kt.f32_conv_cin1_narrow.nr) return kt.f32_conv_cin1_narrow;
  if (kt.f32_conv_cin1_wide.fn != nullptr && cout > kt.f32_conv_cin1.nr) return kt.f32_conv_cin1_wide;
  return kt.f32_conv_cin1;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::int64_t dwconv_block(std::int64_t kernel_nr, std::int64_t channels, std::int64_t stride, std::int64_t dilation,
                          std::int64_t window) {
  // Where 16-channel calls each swept the nine input rows with a 256-byte
  // stride, a 64-channel call walks whole 256-byte runs. On the EPYC (AVX2;
  // conv3d k3 padding 1 with either block in turn in one process, 25
  // rounds) the calls' median time fell 19-22% at 32 channels (1x16x56x56),
  // 13% at 64 and 30% at 96 (1x8x28x28), at one thread and at two; in a
  // scratch loop over the driver's order, 128 channels a call were no
  // faster than 16. conv3d_grad_input's depthwise rows (dw_data.cpp), the
  // same way: -12 to -18% at 64 channels, -15 to -24% at 32, -33% at 96.
  if (stride != 1 || dilation != 1 || (window != 3 && window != 5)) return kernel_nr;
  return std::min(ceil_div(channels, kernel_nr) * kernel_nr, std::max(kernel_nr, kDwconvMaxBlock));
}

std::int64_t dw_wgrad_channel_block(std::int64_t channels, int threads) {
  // A block's rows are read as whole channel runs (16 channels were a
  // 64-byte piece of each position's 256 bytes at 64 channels). On the EPYC
  // (conv3d_grad_weight, k3 padding 1, the blocks in turn in one process, 10-15
  // rounds): 64 against 16 channels, median time x0.76 at 32 channels
  // (1x16x56x56), x0.79-0.85 at 64, x0.63-0.72 at 96 (1x8x28x28), 1 and 2
  // threads. Fewer items than two a thread would leave threads idle.
  const std::int64_t cap = ceil_div(std::max<std::int64_t>(channels, 1), 16) * 16;
  for (const std::int64_t b : {std::int64_t(64), std::int64_t(32)})
    if (kWeightGradParts * ceil_div(channels, b) >= 2 * std::int64_t(threads)) return std::min(b, cap);
  return 16;
}

std::int64_t cin1_pairs_row_length(const ConvGeometry& g) {
  // The kernel computes positions below round_up(wo, 16) and reads a pair
  // (two floats) at each tap: round_up(wo, 16) + (KW - 1) * dilation floats,
  // which covers the padded input (wo + (KW - 1) * dilation at stride 1).
  return ceil_div(g.out[2], 16) * 16 + (g.kernel[2] - 1) * g.params.dilation[2];
}

namespace {

void set_igemm(CpuPlan& plan, const IgemmKernel& k) {
  plan.igemm = k;
  plan.kernel = k.name;
  plan.mr = k.mr;
  plan.nr = k.nr;
}

// Gathered A (packed-a, small-cin): MR rows x chunk taps x C_in floats per chunk.
void plan_gathered_chunks(CpuPlan& plan, const ConvGeometry& g, const CacheBudget& b) {
  const std::int64_t taps = g.taps(), cin = g.in_channels_per_group;
  plan.chunk_taps = std::max<std::int64_t>(1, std::min(taps, b.packed_a / (4 * plan.mr * cin)));
  plan.k_chunks = ceil_div(taps, plan.chunk_taps);
}

// Direct igemm: NR blocks inside the M loop when a group's panels fit in L2
// together; else a panel far larger than L2 is walked in chunks of taps.
void plan_direct_order(CpuPlan& plan, const ConvGeometry& g, const CacheBudget& b) {
  const std::int64_t esize = plan.bf16_pairs ? 2 : 4, cin = g.in_channels_per_group;
  const std::int64_t KW = g.kernel[2], fold = plan.path == CpuPath::fold_w;
  const std::int64_t taps = fold ? g.taps() / KW : g.taps(), kc = fold ? KW * cin : cin;
  const std::int64_t blocks = ceil_div(g.out_channels_per_group, plan.nr), panel = g.taps() * cin * plan.nr;
  plan.m_outer = blocks > 1 && esize * panel * blocks <= b.all_panels;
  // Else groups of blocks: each tile's indirection and each pass over the
  // input serve the whole group.
  plan.block_group = plan.m_outer ? blocks : std::clamp<std::int64_t>(b.block_group / (esize * panel), 1, blocks);
  const std::int64_t chunk = std::max<std::int64_t>(1, b.panel_chunk / (esize * kc * plan.nr));
  if (!plan.m_outer && taps >= 2 * chunk) {
    plan.chunk_taps = chunk;
    plan.k_chunks = ceil_div(taps, chunk);
    plan.block_group = 1;
  } else {
    plan.chunk_taps = taps;
  }
}

// Row drivers: blocks of output rows along H whose KD input planes' slab
// stays in L2 while od advances.
// planar_row: the pairs kernel's planar row length (0: rows as they are).
void plan_rows(CpuPlan& plan, const ConvGeometry& g, const DwconvKernel& k, const CacheBudget& b,
               std::int64_t planar_row = 0) {
  plan.rows = k;
  plan.kernel = k.name;
  plan.nr = k.nr;
  if (plan.path == CpuPath::dwconv)
    plan.nr = int(dwconv_block(k.nr, g.out_channels, g.params.stride[2], g.params.dilation[2], g.kernel[2]));
  plan.planar_row = planar_row;
  const std::int64_t KD = g.kernel[0], KH = g.kernel[1];
  const std::int64_t row_bytes = std::max<std::int64_t>(1, g.in[2] * g.in_channels * 4);
  // (a / b / c == a / (b * c), and b * c may not fit in int64: a 2^46-wide
  // broadcast row times KD = 2^16 wrapped to 0, a division by zero)
  plan.h_block = std::clamp<std::int64_t>(b.row_slab / row_bytes / KD - (KH - 1), 1, g.out[1]);
  // Converted rows (16-bit inputs, planar rows) kept per thread: the rows of
  // one od's pass over the block and one more, so the next od, which reads
  // KD - 1 of the same planes, converts only its new plane (with the rows of
  // two output rows only, every row was converted about KD times: a quarter
  // of a call at 3 input channels). Never fewer than twice one output row's,
  // never more than the 16-bit rows' memory bound allows beyond that (a
  // planar row is longer than the input's: W padding and the last tile's slack).
  const std::int64_t span = (plan.h_block - 1) * g.params.stride[1] + (KH - 1) * g.params.dilation[1] + 1;
  const std::int64_t cached_row_bytes = planar_row > 0 ? planar_row * g.in_channels * 4 : row_bytes;
  const std::int64_t cap = std::int64_t(kRowCacheMaxBytes) / cached_row_bytes;
  plan.row_slots = std::max(2 * KD * KH + 1, std::min(KD * span + 1, cap));
}

std::atomic<std::int64_t> g_l1d{0}, g_l2{0}, g_l3{0};
std::atomic<int> g_cpus{0};
std::atomic<bool> g_winograd{true};

bool winograd_applies(const detail::ConvCall& call, const KernelTable& kt) {
  const ConvGeometry& g = call.geometry;
  const ConvParams& p = g.params;
  if (!g_winograd.load() || !kt.winograd_input || call.input.dtype != DType::float32 || call.input.strides[4] != 1)
    return false;
  if (g.in_channels_per_group < kWinogradMinCin || g.out_channels_per_group < kWinogradMinCout) return false;
  double fill = 1.0;
  for (int i = 0; i < 3; ++i) {
    if (g.kernel[i] != 3 || p.stride[i] != 1 || p.dilation[i] != 1) return false;
    fill *= double(g.out[i]) / double((g.out[i] + 1) / 2 * 2);
  }
  return fill >= kWinogradMinFill && winograd_pays(g, kt, planning_cpus());
}

// Whether the row paths' smallest cache of converted rows (2 x KD x KH + 1
// rows of row_floats x C_in floats, float_rows.h) fits kRowCacheMaxBytes;
// in double: sizes near 2^63 must not wrap before they are refused.
bool row_cache_fits(const ConvGeometry& g, double row_floats) {
  const double rows = 2.0 * double(g.kernel[0]) * double(g.kernel[1]) + 1.0;
  return rows * row_floats * double(g.in_channels) * 4.0 <= kRowCacheMaxBytes;
}

// The few-cin row path's kernel, or null where it does not apply: groups 1,
// an input the row paths read (row_input), a few input channels (more when 5+ output channels fit the
// narrow kernel's one vector). Where the pairs kernel replaces the narrow
// one, *planar_row is its rows' length (else 0).
const DwconvKernel* few_cin_kernel(const ConvGeometry& g, const KernelTable& kt, bool row_input,
                                   std::int64_t* planar_row) {
  *planar_row = 0;
  if (g.groups != 1 || !row_input) return nullptr;
  const DwconvKernel& k = choose_cin1(kt, g.out_channels);
  const bool narrow = &k == &kt.f32_conv_cin1_narrow;
  if (g.in_channels > (narrow ? kRowsNarrowMaxCin : kRowsMaxCin)) return nullptr;
  // Past kRowsMaxCin, up to 4 output channels keep the small-C_out kernel.
  if (g.in_channels > kRowsMaxCin && g.out_channels <= kSmallCoutMax) return nullptr;
  const DwconvKernel& pairs = kt.f32_conv_cin1_pairs;
  if (narrow && pairs.fn != nullptr && g.out_channels <= pairs.nr && g.params.stride[2] == 1 &&
      g.params.padding_mode[2] == PaddingMode::zeros) {
    // The planar copy's cache, as the 16-bit rows' (a bound on
    // cin1_pairs_row_length, in double so that a huge row cannot wrap).
    const double row = double(g.out[2]) + 16.0 + double(g.kernel[2] - 1) * double(g.params.dilation[2]);
    if (row_cache_fits(g, row)) {
      *planar_row = cin1_pairs_row_length(g);
      return &pairs;
    }
  }
  return &k;
}

}  // namespace

const char* path_name(CpuPath path) {
  switch (path) {
    case CpuPath::direct: return "direct";
    case CpuPath::dwconv: return "dwconv";
    case CpuPath::few_cin: return "few-cin";
    case CpuPath::small_cout: return "small-cout";
    case CpuPath::igemm: return "igemm";
    case CpuPath::fold_w: return "fold-w";
    case CpuPath::small_cin: return "small-cin";
    case CpuPath::packed_a: return "packed-a";
    case CpuPath::winograd: return "winograd";
  }
  return "?";
}

std::string CpuPlan::describe() const {
  std::string s = path == CpuPath::direct ? std::string("direct") : std::string(path_name(path)) + ":" + kernel;
  if (bias) s += "+bias";
  if (activation != Activation::none) s += std::string("+") + activation_name(activation);
  if (residual) s += "+residual";
  return s;
}

CpuPlan plan_conv3d(const detail::ConvCall& call, const KernelTable& kt, const platform::CacheSizes& caches,
                    bool allow_winograd) {
  const ConvGeometry& g = call.geometry;
  const CacheBudget b = budget(caches);
  CpuPlan plan;
  const Epilogue& e = g.params.epilogue;
  plan.bias = e.bias.has_value();
  plan.activation = e.activation;
  plan.residual = e.residual.has_value();
  if (call.output.dtype == DType::float64) return plan;  // direct
  const TensorView& out = call.output;
  plan.stream = platform::has_streaming_stores() && out.dtype == DType::float32 && out.strides[4] == 1 &&
                numel(out.shape) * 4 >= kStreamMinBytes;
  const DType in = call.input.dtype, wt = call.weight.dtype;
  const bool channels_contiguous = call.input.strides[4] == 1 || g.in_channels == 1;
  const std::int64_t cin = g.in_channels_per_group;
  // The row paths read fp32 rows: float16 / bfloat16 inputs are converted a
  // row at a time (float_rows.h), far cheaper than the GEMM paths' tiles,
  // which these channel counts fill poorly. float64 results never get here.
  const bool row_input = (in == DType::float32 && channels_contiguous) ||
                         ((in == DType::float16 || in == DType::bfloat16) && row_cache_fits(g, double(g.in[2])));
  if (g.groups == g.in_channels && g.out_channels == g.in_channels && g.groups > 1 && row_input) {
    plan.path = CpuPath::dwconv;
    plan_rows(plan, g, kt.f32_dwconv, b);
    return plan;
  }
  const bool fold_w = cin <= kFoldWMaxCin && in == DType::float32 && g.groups == 1 && call.input.strides[4] == 1 &&
                      call.input.strides[3] == cin && g.params.dilation[2] == 1 && g.kernel[2] * cin >= kFoldWMinK;
  std::int64_t planar_row = 0;
  if (const DwconvKernel* rows = few_cin_kernel(g, kt, row_input, &planar_row)) {
    plan.path = CpuPath::few_cin;
    plan_rows(plan, g, *rows, b, planar_row);
    return plan;
  }
  const std::int64_t cout = g.out_channels_per_group;
  if (cout <= kSmallCoutMax && cin >= kSmallCoutMinCin && row_input && call.input.strides[4] == 1) {
    plan.path = CpuPath::small_cout;
    plan_rows(plan, g, kt.f32_conv_small_cout[cout - 1], b);
    return plan;
  }
  // vdpbf16ps past the row paths: at their channel counts its tiles (NR 64)
  // would be mostly idle lanes.
  if (in == DType::bfloat16 && wt == DType::bfloat16 && kt.n_bf16_igemm > 0 && cin % 2 == 0 && cin > kSmallCin &&
      channels_contiguous) {
    plan.path = CpuPath::igemm;
    plan.bf16_pairs = true;
    plan.tile = choose_tile(kt.bf16_igemm, kt.n_bf16_igemm, g.out_channels_per_group);
    set_igemm(plan, kt.bf16_igemm[plan.tile]);
    plan_direct_order(plan, g, b);
    return plan;
  }
  plan.tile = choose_tile(kt.f32_igemm, kt.n_f32_igemm, g.out_channels_per_group);
  set_igemm(plan, kt.f32_igemm[plan.tile]);
  if (allow_winograd && winograd_applies(call, kt)) {
    plan.path = CpuPath::winograd;
    if (kt.winograd_tall_tiles) {
      plan.tile = choose_winograd_tile(kt.f32_igemm, kt.n_f32_igemm, g.out_channels_per_group);
      set_igemm(plan, kt.f32_igemm[plan.tile]);
    }
    plan.unit_tiles = winograd_unit_tiles(g, plan.mr, b.winograd_u, get_num_threads());
    return plan;
  }
  if (fold_w || (cin > kSmallCin && in == DType::float32 && channels_contiguous)) {
    plan.path = fold_w ? CpuPath::fold_w : CpuPath::igemm;
    plan_direct_order(plan, g, b);
  } else if (cin <= kSmallCin) {
    plan.path = CpuPath::small_cin;
    set_igemm(plan, kt.f32_gemm[plan.tile]);  // same NR as f32_igemm[tile]: shares its packing
    plan_gathered_chunks(plan, g, b);
  } else {
    plan.path = CpuPath::packed_a;
    plan_gathered_chunks(plan, g, b);
  }
  return plan;
}

const char* problem_path_name(ProblemPath path) {
  switch (path) {
    case ProblemPath::phases: return "phases";
    case ProblemPath::dw_data: return "dw-data";
    case ProblemPath::gemm_wgrad: return "gemm-wgrad";
    case ProblemPath::dw_weight_grad: return "dw-weight-grad";
    case ProblemPath::rows_wgrad: return "rows-wgrad";
  }
  return "?";
}

std::string ProblemPlan::describe() const {
  std::string s = problem_path_name(path);
  if (concurrent) s += "+concurrent";
  return *kernel ? s + ":" + kernel : s;
}

// Depthwise problems take their own drivers (the phases' conv3d calls would
// each be a small depthwise conv, and only f32 inputs have a depthwise
// forward kernel); the rest lower to conv3d's paths or the GEMM.
ProblemPlan plan_problem(const detail::ConvProblem& p, const KernelTable& kt, int threads) {
  using detail::ConvProblemGeometry;
  ProblemPlan plan;
  if (p.op == detail::ConvOp::data) {
    if (dw_data_applies(p)) {
      plan.path = ProblemPath::dw_data;
      plan.kernel = p.result.dtype == DType::float64 ? "f64-loops" : kt.f32_dwconv.name;
      plan.channel_block = dw_data_channel_block(p, kt.f32_dwconv.nr);
      const ConvProblemGeometry& g = p.geometry;
      const std::int64_t row_bytes = std::max<std::int64_t>(1, g.in[2] * g.in_channels * 4);
      plan.h_block = std::clamp<std::int64_t>(budget(planning_caches()).row_slab / row_bytes / g.kernel[0] -
                                                  (g.kernel[1] - 1),
                                              1, std::max<std::int64_t>(1, g.out[1]));
    } else {
      plan.concurrent = phases_concurrent(list_phases(p), threads);
    }
    return plan;
  }
  plan.path = dw_weight_grad_applies(p) ? ProblemPath::dw_weight_grad : ProblemPath::gemm_wgrad;
  if (plan.path == ProblemPath::dw_weight_grad)
    plan.channel_block = dw_wgrad_channel_block(p.geometry.out_channels, threads);
  // Up to 32 input channels per group the row path's vectors over C_out win
  // (C_in 2 -> 16: 7x; 32 -> 32: 1.4x, the 2-core EPYC); above, both run at
  // the tile's speed and the gathered GEMM stays. Depthwise padding modes
  // (one channel each side) keep the gathered GEMM's depthwise loop.
  const std::int64_t cig = p.geometry.in_channels_per_group(), cog = p.geometry.out_channels_per_group();
  if (plan.path == ProblemPath::gemm_wgrad && wgrad_rows_applies(p) && cig <= kRowsWgradMaxCin &&
      !(cig == 1 && cog == 1))
    plan.path = ProblemPath::rows_wgrad;
  const WgradBf16Kernel* dot = plan.path == ProblemPath::gemm_wgrad ? wgrad_bf16_dot_for(p) : nullptr;
  plan.kernel = dot ? dot->name : wgrad_kernels_active().name;
  return plan;
}

bool winograd_pays(const ConvGeometry& g, const KernelTable& kt, int cpus) {
  if (std::string_view(kt.isa).substr(0, 6) != "avx512" || cpus < kWinogradManyCpus) return true;
  const double macs = double(numel(g.output_shape())) * double(g.taps()) * double(g.in_channels_per_group);
  return macs / double(std::max(cpus, 1)) >= kWinogradMinMacsPerCpu;
}

int planning_cpus() {
  const int forced = g_cpus.load();
  return forced > 0 ? forced : platform::available_cpus();
}

void set_winograd(bool enabled) { g_winograd.store(enabled); }
bool winograd_enabled() { return g_winograd.load(); }

platform::CacheSizes planning_caches() {
  const platform::CacheSizes forced{g_l1d.load(), g_l2.load(), g_l3.load()};
  return forced.l2 > 0 ? forced : platform::cache_sizes();
}

namespace testing {

CpuPlan plan(const ConstTensorView& input, const ConstTensorView& weight, const ConvParams& params) {
  const ConvGeometry g = make_conv_geometry(input.shape, weight.shape, params);
  TensorView out;
  out.dtype = promote_types(input.dtype, weight.dtype);
  out.shape = g.output_shape();
  out.strides = contiguous_strides(out.shape);
  ConstTensorView in = input;  // conv3d copies strided channels first (input_relayout.h)
  if (needs_channel_relayout(in)) in.strides = contiguous_strides(in.shape);
  return plan_conv3d(detail::ConvCall{g, in, weight, out}, active_kernels(), planning_caches());
}

ProblemPlan plan_problem(detail::ConvOp op, const detail::ConvProblemGeometry& lowered, const ConstTensorView& a,
                         const ConstTensorView& b) {
  detail::ConvProblem p;
  p.op = op;
  p.geometry = lowered;
  p.input = a;
  (op == detail::ConvOp::data ? p.weight : p.output) = b;
  p.result.dtype = promote_types(a.dtype, b.dtype);
  return plan_problem(p, active_kernels(), get_num_threads());
}

std::vector<std::string> active_kernel_names() {
  const KernelTable& kt = active_kernels();
  std::vector<std::string> names;
  for (int i = 0; i < kt.n_f32_igemm; ++i) names.push_back(kt.f32_igemm[i].name);
  for (int i = 0; i < kt.n_f32_igemm; ++i) names.push_back(kt.f32_gemm[i].name);
  for (int i = 0; i < kt.n_bf16_igemm; ++i) names.push_back(kt.bf16_igemm[i].name);
  names.push_back(kt.f32_dwconv.name);
  names.push_back(kt.f32_conv_cin1.name);
  if (kt.f32_conv_cin1_narrow.fn != nullptr) names.push_back(kt.f32_conv_cin1_narrow.name);
  if (kt.f32_conv_cin1_wide.fn != nullptr) names.push_back(kt.f32_conv_cin1_wide.name);
  if (kt.f32_conv_cin1_pairs.fn != nullptr) names.push_back(kt.f32_conv_cin1_pairs.name);
  for (const DwconvKernel& k : kt.f32_conv_small_cout) names.push_back(k.name);
  return names;
}

void override_cpus(int cpus) { g_cpus.store(std::max(cpus, 0)); }

void override_caches(const platform::CacheSizes& caches) {
  g_l1d.store(caches.l1d);
  g_l2.store(caches.l2);
  g_l3.store(caches.l3);
}

}  // namespace testing
}  // namespace volconv::cpu
