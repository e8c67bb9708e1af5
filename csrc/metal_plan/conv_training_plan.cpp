// Plans the training ops' Metal dispatches. Data problems: the stride-phase
// decomposition of csrc/cpu/conv_phases.cpp (per dimension, the outputs
// r, r + P, ... read only the taps landing on real input elements), one
// dispatch per phase, each with its own index map in ConvTrainParams; the
// kernels read the stored weight in place. Weight gradients: a fixed number
// of partial sums, then the ordered reduction. A padding mode's border fold
// (conv3d's input gradient): boxes of the padded shell, each computed by the
// data problem cropped to it and folded into the result.
#include "conv_training_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <type_traits>

#include "../cpu/padding_map.h"  // padded_source: the modes' index rule (header only)

namespace volconv::metal_plan {
namespace {

static_assert(sizeof(ConvTrainParams) == 11 * 8 + 64 * 4, "ConvTrainParams must match the MSL layout: no padding");
static_assert(sizeof(PaddingFoldParams) == 7 * 8 + 20 * 4, "PaddingFoldParams must match the MSL layout: no padding");
// The problem's epilogue slot is empty (no training op takes a bias or an
// activation yet): whoever fills it must make these kernels apply it, or the
// planner refuse it, before this compiles again.
static_assert(std::is_empty_v<detail::Epilogue>, "the training kernels fuse no epilogue: apply or refuse it here");

using detail::ConvProblemGeometry;
using detail::WeightLayout;

struct Fail {
  const char* op;
  [[noreturn]] void operator()(const std::string& message) const {
    throw std::invalid_argument(std::string("[") + op + "] " + message);
  }
};

struct Tile {
  int bm, bn, bk, wm, wn;
};
#define VOLCONV_TILE_ENTRY(T, BM, BN, BK, WM, WN, IDX) Tile{BM, BN, BK, WM, WN},
const Tile kPhaseTiles[] = {VOLCONV_PHASE_TILES(VOLCONV_TILE_ENTRY, _, _)};
const Tile kWgradTiles[] = {VOLCONV_WGRAD_TILES(VOLCONV_TILE_ENTRY, _, _)};
#undef VOLCONV_TILE_ENTRY

// Every instantiation in metal/conv_training_*.metal, named by the macros the
// instantiations use.
struct Kernel {
  const char* name;
  TrainingFamily family;
  const char* type;
  Tile tile;
  bool large;
};
#define VOLCONV_IS_LARGE(IDX) (sizeof(VOLCONV_INDEX_TYPE(IDX)) == 8)
#define VOLCONV_PHASE_ENTRY(T, BM, BN, BK, WM, WN, IDX)                                                     \
  Kernel{VOLCONV_TRAINING_TILE_KERNEL_NAME(phase_gemm, T, BM, BN, BK, WM, WN, IDX), TrainingFamily::phase_gemm, \
         #T, Tile{BM, BN, BK, WM, WN}, VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_WGRAD_ENTRY(T, BM, BN, BK, WM, WN, IDX)                                                     \
  Kernel{VOLCONV_TRAINING_TILE_KERNEL_NAME(wgrad_gemm, T, BM, BN, BK, WM, WN, IDX), TrainingFamily::wgrad_gemm, \
         #T, Tile{BM, BN, BK, WM, WN}, VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_PHASE_DW_ENTRY(T, IDX)                                                                         \
  Kernel{VOLCONV_TRAINING_KERNEL_NAME(phase_depthwise, T, IDX), TrainingFamily::phase_depthwise, #T, Tile{}, \
         VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_WGRAD_DW_ENTRY(T, IDX)                                                                         \
  Kernel{VOLCONV_TRAINING_KERNEL_NAME(wgrad_depthwise, T, IDX), TrainingFamily::wgrad_depthwise, #T, Tile{}, \
         VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_REDUCE_ENTRY(T, IDX)                                                                          \
  Kernel{VOLCONV_TRAINING_KERNEL_NAME(wgrad_reduce, T, IDX), TrainingFamily::wgrad_reduce, #T, Tile{},      \
         VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_FOLD_ENTRY(T, IDX)                                                                           \
  Kernel{VOLCONV_TRAINING_KERNEL_NAME(padding_fold, T, IDX), TrainingFamily::padding_fold, #T, Tile{},       \
         VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_TRAINING_KERNELS_OF(T)                                    \
  VOLCONV_PHASE_GEMM_KERNELS(VOLCONV_PHASE_ENTRY, T)                      \
  VOLCONV_WGRAD_GEMM_KERNELS(VOLCONV_WGRAD_ENTRY, T)                      \
  VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_PHASE_DW_ENTRY, T)             \
  VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_WGRAD_DW_ENTRY, T)             \
  VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_REDUCE_ENTRY, T)               \
  VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_FOLD_ENTRY, T)
const Kernel kKernels[] = {VOLCONV_TRAINING_KERNELS_OF(float) VOLCONV_TRAINING_KERNELS_OF(half)
                               VOLCONV_TRAINING_KERNELS_OF(bfloat)};
#undef VOLCONV_TRAINING_KERNELS_OF
#undef VOLCONV_FOLD_ENTRY
#undef VOLCONV_REDUCE_ENTRY
#undef VOLCONV_WGRAD_DW_ENTRY
#undef VOLCONV_PHASE_DW_ENTRY
#undef VOLCONV_PHASE_ENTRY
#undef VOLCONV_IS_LARGE

const Kernel& find_kernel(TrainingFamily family, const char* type, const Tile& t, bool large) {
  for (const Kernel& k : kKernels)
    if (k.family == family && std::string(k.type) == type && k.tile.bm == t.bm && k.tile.bn == t.bn &&
        k.tile.bk == t.bk && k.tile.wm == t.wm && k.tile.wn == t.wn && k.large == large)
      return k;
  throw std::logic_error(std::string("[volconv] internal: no ") + family_name(family) + " kernel for " + type);
}

const char* msl_type(DType dtype, const Fail& fail) {
  switch (dtype) {
    case DType::float32: return "float";
    case DType::float16: return "half";
    case DType::bfloat16: return "bfloat";
    default: break;
  }
  fail("float64 is not supported on the GPU (Metal has no double type); use float32, float16 or bfloat16, "
       "or run on the CPU.");
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

std::int32_t narrow(std::int64_t v, const char* what, const Fail& fail, bool may_be_negative = false) {
  if ((!may_be_negative && v < 0) || v > std::numeric_limits<std::int32_t>::max() ||
      v < -std::int64_t(std::numeric_limits<std::int32_t>::max()))
    fail(std::string("The GPU kernels need ") + what + " below 2^31, but got " + std::to_string(v) + ".");
  return std::int32_t(v);
}

std::uint64_t grid_dim(std::int64_t v, const char* what, const Fail& fail) {
  if (v > std::int64_t(std::numeric_limits<std::uint32_t>::max()))
    fail(std::string("The GPU grid is too large along ") + what + ": " + std::to_string(v) + " threadgroups.");
  return std::uint64_t(v);
}

// The fields every training dispatch shares: sizes, strides, geometry.
ConvTrainParams common_params(const ConvProblemGeometry& g, const Fail& fail) {
  ConvTrainParams p{};
  p.in_stride_h = g.in[2] * g.in_channels;
  p.in_stride_d = g.in[1] * p.in_stride_h;
  p.in_stride_n = g.in[0] * p.in_stride_d;
  p.out_stride_h = g.out[2] * g.out_channels;
  p.out_stride_d = g.out[1] * p.out_stride_h;
  p.out_stride_n = g.out[0] * p.out_stride_d;
  p.batch = narrow(g.batch, "the batch size", fail);
  p.c_in = narrow(g.in_channels, "C_in", fail);
  p.c_out = narrow(g.out_channels, "C_out", fail);
  p.groups = narrow(g.groups, "groups", fail);
  p.c_in_g = narrow(g.in_channels_per_group(), "C_in / groups", fail);
  p.c_out_g = narrow(g.out_channels_per_group(), "C_out / groups", fail);
  for (int i = 0; i < 3; ++i) {
    p.in_size[i] = narrow(g.in[i], "each input spatial size", fail);
    p.out_size[i] = narrow(g.out[i], "each output spatial size", fail);
    p.k_size[i] = narrow(g.kernel[i], "each kernel size", fail);
    p.stride[i] = narrow(g.stride[i], "each stride", fail);
    p.pad_lo[i] = narrow(g.padding_lo[i], "each padding", fail, true);
    p.kernel_dilation[i] = narrow(g.kernel_dilation[i], "each kernel dilation", fail);
    p.input_dilation[i] = narrow(g.input_dilation[i], "each input dilation", fail);
    // Kernels form o * stride - pad + k * dilation (and its phase form) in 32 bits.
    narrow(g.out[i] * g.stride[i] + g.kernel[i] * g.kernel_dilation[i] + std::abs(g.padding_lo[i]) +
               g.in[i] * g.input_dilation[i],
           "output size * stride + kernel size * dilation + input size * input dilation", fail);
  }
  p.taps = narrow(g.kernel[0] * g.kernel[1] * g.kernel[2], "the number of kernel taps", fail);
  p.flip = g.flip ? 1 : 0;
  for (int i = 0; i < 3; ++i) p.pad_mode[i] = std::int32_t(g.padding_mode[i]);
  p.weight_elements = g.out_channels * std::int64_t(p.taps) * g.in_channels_per_group();
  return p;
}

// Whether some offset the kernels form can pass 2^31 - 1 (then the "_large"
// kernels run): every input index lies within in + |pad_lo| + out * stride +
// K * dilation of the origin per dimension; outputs get a tile of rows of
// slack; weights and partial sums are counted whole. In double: exact below
// 2^53, and anything larger is large anyway.
bool needs_64bit_index(const ConvProblemGeometry& g, const ConvTrainParams& p, int parts) {
  double input = double(g.batch) * double(p.in_stride_n) + double(g.in_channels);
  const double strides[3] = {double(p.in_stride_d), double(p.in_stride_h), double(g.in_channels)};
  for (int i = 0; i < 3; ++i)
    input += (double(g.in[i]) + std::abs(double(g.padding_lo[i])) + double(g.out[i]) * double(g.stride[i]) +
              double(g.kernel[i]) * double(g.kernel_dilation[i])) *
             strides[i];
  const double output = double(g.batch) * double(p.out_stride_n) + 256.0 * double(g.out_channels);
  const double partials = double(std::max(parts, 1)) * double(p.weight_elements);
  const double limit = double(std::numeric_limits<std::int32_t>::max());
  return input > limit || output > limit || partials > limit;
}

std::int64_t gemm_memory(const Tile& t, std::int64_t esize) {
  return std::int64_t(gemm_threadgroup_elements(t.bm, t.bn, t.bk, int(esize))) * esize;
}

bool fits(std::int64_t bytes, std::int64_t threads, const DeviceLimits& limits) {
  return bytes <= limits.max_threadgroup_memory && threads <= limits.max_threads_per_threadgroup;
}

std::string tile_args(const char* type, const Tile& t, bool large) {
  return std::string(type) + ", " + std::to_string(t.bm) + ", " + std::to_string(t.bn) + ", " +
         std::to_string(t.bk) + ", " + std::to_string(t.wm) + ", " + std::to_string(t.wn) +
         (large ? ", int64_t" : ", int32_t");
}

// The tile of a GEMM family: forced, the preferred one, or the smallest that fits.
const Tile& choose_tile(const Tile* tiles, int count, int preferred, int forced, std::int64_t esize,
                        const DeviceLimits& limits, const Fail& fail) {
  if (forced >= count) fail("internal: no tile " + std::to_string(forced) + ".");
  const int first = forced >= 0 ? forced : preferred;
  if (fits(gemm_memory(tiles[first], esize), tiles[first].wm * tiles[first].wn * 32, limits)) return tiles[first];
  const Tile* best = nullptr;
  for (int i = 0; i < count && forced < 0; ++i)
    if (fits(gemm_memory(tiles[i], esize), tiles[i].wm * tiles[i].wn * 32, limits) &&
        (!best || gemm_memory(tiles[i], esize) < gemm_memory(*best, esize)))
      best = &tiles[i];
  if (!best)
    fail("No GPU kernel fits the device limits (threadgroup memory " + std::to_string(limits.max_threadgroup_memory) +
         " bytes, " + std::to_string(limits.max_threads_per_threadgroup) + " threads per threadgroup).");
  return *best;
}

void set_gemm(TrainingDispatch& d, const Kernel& k, const Tile& t, std::int64_t esize, bool large) {
  d.kernel_name = k.name;
  d.family = k.family;
  d.template_args = tile_args(k.type, t, large);
  d.bm = t.bm;
  d.bn = t.bn;
  d.bk = t.bk;
  d.wm = t.wm;
  d.wn = t.wn;
  d.threadgroup = {std::uint64_t(t.wm * t.wn * 32), 1, 1};
  d.threadgroup_memory_bytes = std::uint64_t(gemm_memory(t, esize));
}

void set_untiled(TrainingDispatch& d, const Kernel& k, std::uint64_t threads, bool large) {
  d.kernel_name = k.name;
  d.family = k.family;
  d.template_args = std::string(k.type) + (large ? ", int64_t" : ", int32_t");
  d.threadgroup = {threads, 1, 1};
  d.threadgroup_memory_bytes = 16;  // the kernels take the argument but use none
}

// One phase along one dimension (conv_phases.cpp's plan_dim, for the GPU:
// no input slicing, the kernels bound-check instead).
struct DimPhase {
  std::int64_t count = 0, taps = 0, tap0 = 0, tap_step = 1, in_base = 0, in_step = 1, tap_in_step = 1;
};

DimPhase plan_dim(const ConvProblemGeometry& g, int i, std::int64_t r, std::int64_t P) {
  DimPhase ph;
  const std::int64_t out = g.out[i], K = g.kernel[i], st = g.stride[i], kdil = g.kernel_dilation[i];
  const std::int64_t idil = g.input_dilation[i];
  ph.count = (out - r + P - 1) / P;
  const std::int64_t T = idil / std::gcd(kdil, idil);
  const std::int64_t base = r * st - g.padding_lo[i];
  for (std::int64_t k = 0; k < std::min(T, K); ++k) {
    if (((base + k * kdil) % idil + idil) % idil != 0) continue;
    ph.tap0 = k;
    ph.tap_step = T;
    ph.taps = (K - 1 - k) / T + 1;
    ph.in_base = (base + k * kdil) / idil;  // exact
    break;
  }
  ph.in_step = st / std::gcd(st, idil);
  ph.tap_in_step = kdil / std::gcd(kdil, idil);
  return ph;
}

// Appends, per shell box, the data problem cropped to the box (its phases,
// into the scratch) and the box's fold into the result. Deterministic without
// atomics: the boxes run one after another (the encoder's dispatches run in
// order), and within a fold each result element is one thread's, which adds
// its box sources in a fixed order.
void append_padding_fold(TrainingPlan& plan, const char* op, const detail::ConvProblem& problem, DType dtype,
                         const DeviceLimits& limits, const TrainingPlanOptions& options) {
  const Fail fail{op};
  const ConvProblemGeometry& g = problem.geometry;
  const detail::PaddingFold& f = problem.fold;
  const char* type = msl_type(dtype, fail);
  const std::int64_t esize = std::int64_t(dtype_size(dtype)), C = g.out_channels;
  for (const FoldBox& b : detail::padding_shell_boxes(f, g.out)) {
    ConvProblemGeometry q = g;  // out[j] of the box is out[begin + j] of the problem
    for (int i = 0; i < 3; ++i) {
      q.out[i] = b.len[i];
      q.padding_lo[i] = g.padding_lo[i] - b.begin[i] * g.stride[i];
    }
    TrainingPlan box_plan = plan_data_problem(op, q, problem.weight_layout, dtype, limits, options);
    for (TrainingDispatch& d : box_plan.dispatches) {
      d.buffers[2] = TrainingBuffer::scratch;
      plan.dispatches.push_back(d);
    }
    const std::int64_t box_elements = g.batch * b.len[0] * b.len[1] * b.len[2] * C;
    plan.scratch_bytes = std::max(plan.scratch_bytes, std::uint64_t(box_elements * esize));

    TrainingDispatch d;
    PaddingFoldParams& p = d.fold;
    std::int64_t targets = 1;
    for (int i = 0; i < 3; ++i) {
      // The result positions the box's coordinates read: their hull.
      std::int64_t lo = g.out[i], hi = -1;
      for (std::int64_t c = b.begin[i]; c < b.begin[i] + b.len[i]; ++c) {
        const std::int64_t t = cpu::padded_source(f.mode[i], g.out[i], c);
        lo = std::min(lo, t);
        hi = std::max(hi, t);
      }
      if (lo < 0) fail("internal: a fold box reads outside the input.");
      p.size[i] = narrow(g.out[i], "each input spatial size", fail);
      p.mode[i] = std::int32_t(f.mode[i]);
      p.box_begin[i] = narrow(b.begin[i], "each fold box coordinate", fail, true);
      p.box_len[i] = narrow(b.len[i], "each fold box size", fail);
      p.target_begin[i] = std::int32_t(lo);
      p.target_len[i] = std::int32_t(hi - lo + 1);
      targets *= hi - lo + 1;
    }
    p.batch = narrow(g.batch, "the batch size", fail);
    p.channels = narrow(C, "C_in", fail);
    p.count = g.batch * targets * C;
    p.result_stride_h = g.out[2] * C;
    p.result_stride_d = g.out[1] * p.result_stride_h;
    p.result_stride_n = g.out[0] * p.result_stride_d;
    p.box_stride_h = b.len[2] * C;
    p.box_stride_d = b.len[1] * p.box_stride_h;
    p.box_stride_n = b.len[0] * p.box_stride_d;
    // The thread index runs a threadgroup past the count.
    const std::int64_t limit = std::numeric_limits<std::int32_t>::max() - TrainingTile::FOLD_THREADS;
    const bool large = options.force_64bit_index || g.batch * p.result_stride_n > limit || box_elements > limit;
    set_untiled(d, find_kernel(TrainingFamily::padding_fold, type, Tile{}, large), TrainingTile::FOLD_THREADS, large);
    d.grid = {grid_dim(ceil_div(p.count, TrainingTile::FOLD_THREADS), "the fold's result elements", fail), 1, 1};
    d.buffers[0] = TrainingBuffer::scratch;
    d.buffers[1] = TrainingBuffer::scratch;
    d.buffers[2] = TrainingBuffer::result;
    plan.dispatches.push_back(d);
    plan.fold_boxes.push_back(b);
    if (box_plan.index_bits == 64 || large) plan.index_bits = 64;
  }
}

}  // namespace

const char* family_name(TrainingFamily family) {
  switch (family) {
    case TrainingFamily::phase_gemm: return "phase_gemm";
    case TrainingFamily::phase_depthwise: return "phase_depthwise";
    case TrainingFamily::wgrad_gemm: return "wgrad_gemm";
    case TrainingFamily::wgrad_depthwise: return "wgrad_depthwise";
    case TrainingFamily::wgrad_reduce: return "wgrad_reduce";
    case TrainingFamily::padding_fold: return "padding_fold";
  }
  return "?";
}

const char* buffer_name(TrainingBuffer buffer) {
  switch (buffer) {
    case TrainingBuffer::input: return "input";
    case TrainingBuffer::weight: return "weight";
    case TrainingBuffer::output: return "output";
    case TrainingBuffer::partials: return "partials";
    case TrainingBuffer::result: return "result";
    case TrainingBuffer::scratch: return "scratch";
  }
  return "?";
}

int tile_count(TrainingFamily family) {
  if (family == TrainingFamily::phase_gemm) return int(std::size(kPhaseTiles));
  if (family == TrainingFamily::wgrad_gemm) return int(std::size(kWgradTiles));
  return 0;
}

int weight_grad_parts(std::int64_t positions, std::int64_t weight_elements) {
  // About 2048 positions per part, at most MAX_PARTS, and at most 256 MiB of
  // partial sums: enough threadgroups for small weights, bounded memory.
  std::int64_t parts = std::clamp<std::int64_t>(ceil_div(positions, 2048), 1, TrainingTile::MAX_PARTS);
  while (parts > 1 && parts * weight_elements * 4 > (std::int64_t(256) << 20)) --parts;
  return int(parts);
}

TrainingPlan plan_problem(const char* op, const detail::ConvProblem& problem, DType dtype,
                          const DeviceLimits& limits, const TrainingPlanOptions& options) {
  if (problem.op == detail::ConvOp::weight_grad)
    return plan_weight_grad(op, problem.geometry, dtype, limits, options, problem.zero_taps);
  TrainingPlan plan = plan_data_problem(op, problem.geometry, problem.weight_layout, dtype, limits, options);
  if (problem.fold.active()) append_padding_fold(plan, op, problem, dtype, limits, options);
  return plan;
}

TrainingPlan plan_data_problem(const char* op, const ConvProblemGeometry& g, WeightLayout layout, DType dtype,
                               const DeviceLimits& limits, const TrainingPlanOptions& options) {
  const Fail fail{op};
  const char* type = msl_type(dtype, fail);
  if (limits.simd_width != 32)
    fail("The GPU kernels are written for 32-wide simdgroups, but the device reports " +
         std::to_string(limits.simd_width) + ".");
  ConvTrainParams base = common_params(g, fail);
  // Only the weight gradient reads through a padding mode (wgrad_source); the
  // phase kernels read zeros, so a mode here is refused, never ignored (an
  // input gradient's modes arrive as problem.fold: plan_problem).
  for (PaddingMode m : g.padding_mode)
    if (m != PaddingMode::zeros)
      fail(std::string("Padding mode '") + padding_mode_name(m) +
           "' is not supported by the gpu data kernels yet; run on the cpu.");
  base.weight_in_k_out = layout == WeightLayout::in_k_out ? 1 : 0;
  TrainingPlan plan;
  plan.dtype = dtype;
  const bool large = options.force_64bit_index || needs_64bit_index(g, base, 0);
  plan.index_bits = large ? 64 : 32;
  const std::int64_t esize = std::int64_t(dtype_size(dtype));
  // Depthwise: one output channel per group and few input channels each
  // (the input gradient of a depthwise conv with a channel multiplier reads
  // `multiplier` of them).
  const bool depthwise_fits = g.groups > 1 && base.c_out_g == 1 && base.c_in_g <= 8;
  const bool depthwise = options.force_family == 1 || (options.force_family < 0 && depthwise_fits);
  if (depthwise && !depthwise_fits)
    fail("internal: the depthwise phase kernel needs one output and at most 8 input channels per group.");
  const int preferred = base.c_out_g > 16 ? 0 : 1;
  const Tile* tile = depthwise ? nullptr
                               : &choose_tile(kPhaseTiles, int(std::size(kPhaseTiles)), preferred,
                                              options.force_tile, esize, limits, fail);
  std::int64_t P[3];
  for (int i = 0; i < 3; ++i) P[i] = g.input_dilation[i] / std::gcd(g.stride[i], g.input_dilation[i]);
  for (std::int64_t r0 = 0; r0 < std::min(P[0], g.out[0]); ++r0)
    for (std::int64_t r1 = 0; r1 < std::min(P[1], g.out[1]); ++r1)
      for (std::int64_t r2 = 0; r2 < std::min(P[2], g.out[2]); ++r2) {
        const std::int64_t r[3] = {r0, r1, r2};
        TrainingDispatch d;
        ConvTrainParams& p = d.params;
        p = base;
        std::int64_t taps = 1;
        for (int i = 0; i < 3; ++i) {
          const DimPhase ph = plan_dim(g, i, r[i], P[i]);
          p.row_count[i] = std::int32_t(ph.count);
          p.out_first[i] = std::int32_t(r[i]);
          p.out_step[i] = std::int32_t(P[i]);
          p.in_base[i] = std::int32_t(ph.in_base);
          p.in_step[i] = std::int32_t(ph.in_step);
          p.tap_in_step[i] = std::int32_t(ph.tap_in_step);
          p.tap0[i] = std::int32_t(ph.tap0);
          p.tap_step[i] = std::int32_t(ph.tap_step);
          p.phase_taps[i] = std::int32_t(ph.taps);
          taps *= ph.taps;
        }
        // A dimension without a real tap: the whole phase is zeros (K = 0).
        if (taps == 0)
          for (int i = 0; i < 3; ++i) p.phase_taps[i] = std::max(p.phase_taps[i], 1);
        p.phase_k = std::int32_t(taps * p.c_in_g);
        p.rows_hw = std::int64_t(p.row_count[1]) * p.row_count[2];
        p.rows_dhw = p.row_count[0] * p.rows_hw;
        p.gemm_m = g.batch * p.rows_dhw;
        if (depthwise) {
          set_untiled(d, find_kernel(TrainingFamily::phase_depthwise, type, Tile{}, large), TrainingTile::THREADS,
                      large);
          const int rows = TrainingTile::THREADS / TrainingTile::CHANNELS * TrainingTile::ROWS_PER_THREAD;
          d.grid = {grid_dim(ceil_div(p.gemm_m, rows), "M", fail),
                    grid_dim(ceil_div(p.c_out, TrainingTile::CHANNELS), "C_out", fail), 1};
        } else {
          set_gemm(d, find_kernel(TrainingFamily::phase_gemm, type, *tile, large), *tile, esize, large);
          d.grid = {grid_dim(ceil_div(p.gemm_m, tile->bm), "M", fail),
                    grid_dim(ceil_div(p.c_out_g, tile->bn), "C_out tiles", fail), grid_dim(p.groups, "groups", fail)};
        }
        d.buffers[0] = TrainingBuffer::input;
        d.buffers[1] = TrainingBuffer::weight;
        d.buffers[2] = TrainingBuffer::result;
        plan.dispatches.push_back(d);
      }
  return plan;
}

TrainingPlan plan_weight_grad(const char* op, const ConvProblemGeometry& g, DType dtype, const DeviceLimits& limits,
                              const TrainingPlanOptions& options, detail::ZeroTaps zero_taps) {
  const Fail fail{op};
  const char* type = msl_type(dtype, fail);
  if (limits.simd_width != 32)
    fail("The GPU kernels are written for 32-wide simdgroups, but the device reports " +
         std::to_string(limits.simd_width) + ".");
  ConvTrainParams p = common_params(g, fail);
  p.gemm_m = g.batch * g.out[0] * g.out[1] * g.out[2];
  p.rows_hw = g.out[1] * g.out[2];
  p.rows_dhw = g.out[0] * p.rows_hw;
  p.phase_k = narrow(std::int64_t(p.taps) * p.c_in_g, "KD * KH * KW * C_in / groups", fail);
  p.parts = weight_grad_parts(p.gemm_m, p.weight_elements);
  p.part_len = std::max<std::int64_t>(1, ceil_div(p.gemm_m, p.parts));
  p.multiply_zeros = zero_taps == detail::ZeroTaps::multiplied ? 1 : 0;
  TrainingPlan plan;
  plan.dtype = dtype;
  plan.parts = p.parts;
  const bool large = options.force_64bit_index || needs_64bit_index(g, p, p.parts);
  plan.index_bits = large ? 64 : 32;
  plan.partials_bytes = std::uint64_t(p.parts) * std::uint64_t(p.weight_elements) * 4;
  const std::int64_t esize = std::int64_t(dtype_size(dtype));
  const bool depthwise_fits = g.groups > 1 && p.c_in_g == 1;
  const bool depthwise = options.force_family == 1 || (options.force_family < 0 && depthwise_fits);
  if (depthwise && !depthwise_fits)
    fail("internal: the depthwise weight-gradient kernel needs one input channel per group.");

  TrainingDispatch partial;
  partial.params = p;
  partial.buffers[0] = TrainingBuffer::input;
  partial.buffers[1] = TrainingBuffer::output;
  partial.buffers[2] = TrainingBuffer::partials;
  if (depthwise) {
    set_untiled(partial, find_kernel(TrainingFamily::wgrad_depthwise, type, Tile{}, large), TrainingTile::THREADS,
                large);
    const int taps_per_group = TrainingTile::THREADS / TrainingTile::CHANNELS;
    partial.grid = {grid_dim(ceil_div(p.c_out, TrainingTile::CHANNELS), "C_out", fail),
                    grid_dim(ceil_div(p.taps, taps_per_group), "taps", fail), std::uint64_t(p.parts)};
  } else {
    const Tile& tile = choose_tile(kWgradTiles, int(std::size(kWgradTiles)), p.c_out_g > 16 ? 0 : 1,
                                   options.force_tile, esize, limits, fail);
    set_gemm(partial, find_kernel(TrainingFamily::wgrad_gemm, type, tile, large), tile, esize, large);
    partial.grid = {grid_dim(ceil_div(p.c_out_g, tile.bm), "C_out tiles", fail),
                    grid_dim(ceil_div(p.phase_k, tile.bn), "weight columns", fail),
                    grid_dim(std::int64_t(p.groups) * p.parts, "groups * parts", fail)};
  }
  plan.dispatches.push_back(partial);

  TrainingDispatch reduce;
  reduce.params = p;
  reduce.buffers[0] = TrainingBuffer::partials;
  reduce.buffers[1] = TrainingBuffer::partials;
  reduce.buffers[2] = TrainingBuffer::result;
  set_untiled(reduce, find_kernel(TrainingFamily::wgrad_reduce, type, Tile{}, large), TrainingTile::REDUCE_THREADS,
              large);
  reduce.grid = {grid_dim(ceil_div(p.weight_elements, TrainingTile::REDUCE_THREADS), "weights", fail), 1, 1};
  plan.dispatches.push_back(reduce);
  return plan;
}

std::string describe(const TrainingDispatch& d) {
  return std::string("kernel \"") + d.kernel_name + "\" (" + family_name(d.family) + "<" + d.template_args +
         ">, tile " + std::to_string(d.bm) + "x" + std::to_string(d.bn) + "x" + std::to_string(d.bk) +
         ", simdgroups " + std::to_string(d.wm) + "x" + std::to_string(d.wn) + ")";
}

std::uint64_t threadgroup_memory_length(const TrainingDispatch& d) { return (d.threadgroup_memory_bytes + 15) / 16 * 16; }

void check_pipeline(const TrainingDispatch& d, const PipelineFacts& facts) {
  const std::uint64_t threads = d.threadgroup.x * d.threadgroup.y * d.threadgroup.z;
  if (threads > facts.max_total_threads || facts.execution_width != 32)
    throw std::runtime_error("[volconv] The Metal pipeline of " + describe(d) + " allows " +
                             std::to_string(facts.max_total_threads) + " threads per threadgroup in " +
                             std::to_string(facts.execution_width) + "-wide simdgroups; the plan needs " +
                             std::to_string(threads) + " in 32-wide ones.");
  const std::uint64_t needed = threadgroup_memory_length(d) + facts.static_threadgroup_memory;
  if (needed > facts.device_max_threadgroup_memory)
    throw std::runtime_error("[volconv] " + describe(d) + " needs " + std::to_string(needed) +
                             " bytes of threadgroup memory; this GPU has " +
                             std::to_string(facts.device_max_threadgroup_memory) + ".");
}

std::vector<std::string> plannable_training_kernel_names() {
  std::vector<std::string> names;
  for (const Kernel& k : kKernels) names.emplace_back(k.name);
  return names;
}

LibraryUnit library_unit(TrainingFamily family, DType dtype) {
  int f = 0, t = 0;
  switch (family) {
    case TrainingFamily::phase_gemm: f = VOLCONV_FAMILY_phase_gemm; break;
    case TrainingFamily::phase_depthwise: f = VOLCONV_FAMILY_phase_depthwise; break;
    case TrainingFamily::wgrad_gemm: f = VOLCONV_FAMILY_wgrad_gemm; break;
    case TrainingFamily::wgrad_depthwise: f = VOLCONV_FAMILY_wgrad_depthwise; break;
    case TrainingFamily::wgrad_reduce: f = VOLCONV_FAMILY_wgrad_reduce; break;
    case TrainingFamily::padding_fold: f = VOLCONV_FAMILY_padding_fold; break;
  }
  const Fail fail{"volconv"};
  switch (dtype) {
    case DType::float32: t = VOLCONV_DTYPE_float; break;
    case DType::float16: t = VOLCONV_DTYPE_half; break;
    case DType::bfloat16: t = VOLCONV_DTYPE_bfloat; break;
    default: fail("float64 has no GPU kernels.");
  }
  return {std::string(family_name(family)) + "/" + msl_type(dtype, fail),
          "#define VOLCONV_LIBRARY_FAMILY " + std::to_string(f) + "\n#define VOLCONV_LIBRARY_DTYPE " +
              std::to_string(t) + "\n"};
}

}  // namespace volconv::metal_plan
