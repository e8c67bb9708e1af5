// Chooses kernel, tile and launch geometry for one conv3d call. Order of
// preference: the specialised kernels where the general GEMM's shape is poor
// (depthwise, tiny C_in, 1x1x1), then the general implicit GEMM with the
// tile that wastes least along C_out.
#include "conv3d_plan.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace volconv::metal_plan {
namespace {

static_assert(sizeof(Conv3dParams) == 6 * 8 + 30 * 4, "Conv3dParams must match the MSL layout: no padding");

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("[conv3d] " + message); }

struct Tile {
  int bm, bn, bk, wm, wn;
};

#define VOLCONV_TILE_ENTRY(T, BM, BN, BK, WM, WN, VEC) Tile{BM, BN, BK, WM, WN},
const Tile kGemmTiles[] = {VOLCONV_GEMM_TILES(VOLCONV_TILE_ENTRY, _, _)};
const Tile kSmallCinTiles[] = {VOLCONV_SMALL_CIN_TILES(VOLCONV_TILE_ENTRY, _, _)};
#undef VOLCONV_TILE_ENTRY

const char* msl_type(DType dtype) {
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

std::int32_t narrow(std::int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<std::int32_t>::max())
    fail(std::string("The GPU kernels need ") + what + " below 2^31, but got " + std::to_string(v) + ".");
  return std::int32_t(v);
}

Conv3dParams make_params(const ConvGeometry& g) {
  Conv3dParams p{};
  const ConvParams& c = g.params;
  p.gemm_m = g.batch * g.out[0] * g.out[1] * g.out[2];
  p.in_stride_h = g.in[2] * g.in_channels;
  p.in_stride_d = g.in[1] * p.in_stride_h;
  p.in_stride_n = g.in[0] * p.in_stride_d;
  p.out_rows_hw = g.out[1] * g.out[2];
  p.out_rows_dhw = g.out[0] * p.out_rows_hw;
  p.batch = narrow(g.batch, "the batch size");
  p.c_in = narrow(g.in_channels, "C_in");
  p.c_out = narrow(g.out_channels, "C_out");
  for (int i = 0; i < 3; ++i) {
    p.in_size[i] = narrow(g.in[i], "each input spatial size");
    p.k_size[i] = narrow(g.kernel[i], "each kernel size");
    p.out_size[i] = narrow(g.out[i], "each output spatial size");
    p.stride[i] = narrow(c.stride[i], "each stride");
    p.pad_lo[i] = narrow(c.padding_lo[i], "each padding");
    p.dilation[i] = narrow(c.dilation[i], "each dilation");
    // Kernels form o*stride - pad + k*dilation in 32 bits.
    narrow(g.out[i] * c.stride[i] + g.kernel[i] * c.dilation[i] + c.padding_lo[i],
           "output size * stride + kernel size * dilation");
  }
  p.groups = narrow(g.groups, "groups");
  p.c_in_g = narrow(g.in_channels_per_group, "C_in / groups");
  p.c_out_g = narrow(g.out_channels_per_group, "C_out / groups");
  p.taps = narrow(g.taps(), "the number of kernel taps");
  p.gemm_k = narrow(std::int64_t(p.taps) * p.c_in_g, "KD * KH * KW * C_in / groups");
  p.tiles_n = 1;
  p.patch_w = 0;
  return p;
}

std::uint64_t grid_dim(std::int64_t v, const char* what) {
  if (v > std::int64_t(std::numeric_limits<std::uint32_t>::max()))
    fail(std::string("The GPU grid is too large along ") + what + ": " + std::to_string(v) + " threadgroups.");
  return std::uint64_t(v);
}

std::string tile_suffix(const Tile& t, int vec) {
  return "_" + std::to_string(t.bm) + "x" + std::to_string(t.bn) + "x" + std::to_string(t.bk) + "_" +
         std::to_string(t.wm) + "x" + std::to_string(t.wn) + "_v" + std::to_string(vec);
}

std::string tile_args(const char* type, const Tile& t, int vec) {
  return std::string(type) + ", " + std::to_string(t.bm) + ", " + std::to_string(t.bn) + ", " +
         std::to_string(t.bk) + ", " + std::to_string(t.wm) + ", " + std::to_string(t.wn) + ", " +
         std::to_string(vec);
}

// Threadgroup padding per row, as in TilePad (metal/conv3d_common.h): 16 bytes.
std::int64_t pad_elements(std::int64_t element_size) { return 16 / element_size; }

std::int64_t gemm_memory(const Tile& t, std::int64_t esize) {
  const std::int64_t pad = pad_elements(esize);
  return 2 * (t.bm * (t.bk + pad) + t.bk * (t.bn + pad)) * esize;
}

// Metal wants threadgroup memory lengths in multiples of 16 bytes.
std::int64_t round_up_16(std::int64_t bytes) { return (bytes + 15) / 16 * 16; }

std::int64_t small_cin_memory(const Tile& t, std::int64_t patch_elements, std::int64_t esize) {
  return round_up_16((2 * t.bk * (t.bn + pad_elements(esize)) + patch_elements) * esize);
}

bool fits(std::int64_t bytes, std::int64_t threads, const DeviceLimits& limits) {
  return bytes <= limits.max_threadgroup_memory && threads <= limits.max_threads_per_threadgroup;
}

void set_tile(Conv3dPlan& plan, const Tile& t, int vec) {
  plan.bm = t.bm;
  plan.bn = t.bn;
  plan.bk = t.bk;
  plan.wm = t.wm;
  plan.wn = t.wn;
  plan.vec = vec;
  plan.threadgroup = {std::uint64_t(t.wm * t.wn * 32), 1, 1};
}

bool plan_depthwise(Conv3dPlan& plan, const char* type, std::int64_t esize, const DeviceLimits& limits) {
  const Conv3dParams& p = plan.params;
  if (p.c_in_g != 1 || p.groups == 1) return false;
  const std::int64_t bytes = std::int64_t(p.taps) * DepthwiseTile::CHANNELS * esize;
  if (!fits(bytes, DepthwiseTile::THREADS, limits)) return false;
  // Vector loads need input channel == output channel and aligned channels.
  const int vec = (p.c_out_g == 1 && p.c_out % 4 == 0) ? 4 : 1;
  const int positions = DepthwiseTile::THREADS / (DepthwiseTile::CHANNELS / vec) * DepthwiseTile::POSITIONS_PER_THREAD;
  plan.family = KernelFamily::depthwise;
  plan.kernel_name = std::string("conv3d_depthwise_") + type + "_v" + std::to_string(vec);
  plan.template_args = std::string(type) + ", " + std::to_string(vec);
  plan.bm = positions;
  plan.bn = DepthwiseTile::CHANNELS;
  plan.vec = vec;
  plan.threadgroup = {DepthwiseTile::THREADS, 1, 1};
  plan.grid = {grid_dim(ceil_div(p.gemm_m, positions), "M"), grid_dim(ceil_div(p.c_out, DepthwiseTile::CHANNELS), "C_out"),
               1};
  plan.threadgroup_memory_bytes = std::uint64_t(bytes);
  return true;
}

bool plan_small_cin(Conv3dPlan& plan, const char* type, std::int64_t esize, const DeviceLimits& limits) {
  Conv3dParams& p = plan.params;
  if (p.c_in_g > 4 || p.taps == 1) return false;
  // A threadgroup covers a segment of one output row; short rows would leave
  // most of it idle, the general kernel tiles across rows instead.
  const Tile& preferred = p.c_out_g > 32 ? kSmallCinTiles[0] : p.c_out_g > 16 ? kSmallCinTiles[1] : kSmallCinTiles[2];
  if (p.out_size[2] < preferred.bm / 2) return false;
  const int vec = p.gemm_k % 4 == 0 ? 4 : 1;
  for (const Tile* t : {&preferred, &kSmallCinTiles[2]}) {
    const std::int64_t patch_w = std::int64_t(t->bm - 1) * p.stride[2] + std::int64_t(p.k_size[2] - 1) * p.dilation[2] + 1;
    const std::int64_t patch = std::int64_t(p.k_size[0]) * p.k_size[1] * patch_w * p.c_in_g;
    const std::int64_t bytes = small_cin_memory(*t, patch, esize);
    if (!fits(bytes, t->wm * t->wn * 32, limits)) continue;
    plan.family = KernelFamily::small_cin;
    plan.kernel_name = std::string("conv3d_small_cin_") + type + tile_suffix(*t, vec);
    plan.template_args = tile_args(type, *t, vec);
    set_tile(plan, *t, vec);
    p.patch_w = std::int32_t(patch_w);
    p.tiles_n = std::int32_t(ceil_div(p.c_out_g, t->bn));
    plan.grid = {grid_dim(ceil_div(p.out_size[2], t->bm), "Wo"),
                 grid_dim(std::int64_t(p.batch) * p.out_size[0] * p.out_size[1], "N * Do * Ho"),
                 grid_dim(std::int64_t(p.groups) * p.tiles_n, "groups * C_out tiles")};
    plan.threadgroup_memory_bytes = std::uint64_t(bytes);
    return true;
  }
  return false;
}

const Tile& preferred_gemm_tile(const Conv3dParams& p) {
  if (p.gemm_m <= 32) return kGemmTiles[4];
  if (p.c_out_g > 32) return kGemmTiles[0];
  if (p.c_out_g > 16) return kGemmTiles[1];
  if (p.c_out_g > 8) return kGemmTiles[2];
  return kGemmTiles[3];
}

bool plan_gemm(Conv3dPlan& plan, const char* type, std::int64_t esize, const DeviceLimits& limits) {
  Conv3dParams& p = plan.params;
  const bool pointwise = p.taps == 1;
  // Vector loads of 4 channels need them within one tap and 4-aligned.
  const int vec = p.c_in_g % 4 == 0 ? 4 : 1;
  const Tile* best = nullptr;
  const Tile& preferred = preferred_gemm_tile(p);
  if (fits(gemm_memory(preferred, esize), preferred.wm * preferred.wn * 32, limits)) best = &preferred;
  for (const Tile& t : kGemmTiles) {  // else the smallest that fits
    if (best == &preferred) break;
    if (fits(gemm_memory(t, esize), t.wm * t.wn * 32, limits) &&
        (!best || gemm_memory(t, esize) < gemm_memory(*best, esize)))
      best = &t;
  }
  if (!best) return false;
  plan.family = pointwise ? KernelFamily::pointwise : KernelFamily::gemm;
  plan.kernel_name = std::string(pointwise ? "conv3d_pointwise_" : "conv3d_gemm_") + type + tile_suffix(*best, vec);
  plan.template_args = tile_args(type, *best, vec) + (pointwise ? ", true" : ", false");
  set_tile(plan, *best, vec);
  p.tiles_n = std::int32_t(ceil_div(p.c_out_g, best->bn));
  plan.grid = {grid_dim(ceil_div(p.gemm_m, best->bm), "M"), grid_dim(p.tiles_n, "C_out tiles"),
               grid_dim(p.groups, "groups")};
  plan.threadgroup_memory_bytes = std::uint64_t(gemm_memory(*best, esize));
  return true;
}

}  // namespace

const char* family_name(KernelFamily family) {
  switch (family) {
    case KernelFamily::gemm: return "gemm";
    case KernelFamily::pointwise: return "pointwise";
    case KernelFamily::small_cin: return "small_cin";
    case KernelFamily::depthwise: return "depthwise";
  }
  return "?";
}

std::string describe(const Conv3dPlan& plan) {
  return std::string("kernel \"") + plan.kernel_name + "\" (" + family_name(plan.family) + "<" + plan.template_args +
         ">, tile " + std::to_string(plan.bm) + "x" + std::to_string(plan.bn) + "x" + std::to_string(plan.bk) +
         ", simdgroups " + std::to_string(plan.wm) + "x" + std::to_string(plan.wn) + ", vec " +
         std::to_string(plan.vec) + ")";
}

std::uint64_t threadgroup_memory_length(const Conv3dPlan& plan) {
  return (plan.threadgroup_memory_bytes + 15) / 16 * 16;
}

void check_pipeline(const Conv3dPlan& plan, const PipelineFacts& facts) {
  const std::uint64_t threads = plan.threadgroup.x * plan.threadgroup.y * plan.threadgroup.z;
  if (threads > facts.max_total_threads || facts.execution_width != 32)
    throw std::runtime_error("[volconv] The Metal pipeline of " + describe(plan) + " allows " +
                             std::to_string(facts.max_total_threads) + " threads per threadgroup in " +
                             std::to_string(facts.execution_width) + "-wide simdgroups; the plan needs " +
                             std::to_string(threads) + " in 32-wide ones.");
  if (threadgroup_memory_length(plan) + facts.static_threadgroup_memory > facts.device_max_threadgroup_memory)
    throw std::runtime_error("[volconv] " + describe(plan) + " needs " +
                             std::to_string(plan.threadgroup_memory_bytes) +
                             " bytes of threadgroup memory; this GPU has " +
                             std::to_string(facts.device_max_threadgroup_memory) + ".");
}

Conv3dPlan plan_conv3d(const ConvGeometry& geometry, DType dtype, const DeviceLimits& limits) {
  const char* type = msl_type(dtype);
  if (limits.simd_width != 32)
    fail("The GPU kernels are written for 32-wide simdgroups, but the device reports " +
         std::to_string(limits.simd_width) + ".");
  Conv3dPlan plan;
  plan.dtype = dtype;
  plan.params = make_params(geometry);
  const std::int64_t esize = std::int64_t(dtype_size(dtype));
  if (plan_depthwise(plan, type, esize, limits) || plan_small_cin(plan, type, esize, limits) ||
      plan_gemm(plan, type, esize, limits))
    return plan;
  fail("No GPU kernel fits the device limits (threadgroup memory " + std::to_string(limits.max_threadgroup_memory) +
       " bytes, " + std::to_string(limits.max_threads_per_threadgroup) + " threads per threadgroup).");
}

std::vector<std::string> plannable_kernel_names() {
  std::vector<std::string> names;
  for (const char* type : {"float", "half", "bfloat"}) {
    for (int vec : {1, 4}) {
      for (const Tile& t : kGemmTiles) {
        names.push_back(std::string("conv3d_gemm_") + type + tile_suffix(t, vec));
        names.push_back(std::string("conv3d_pointwise_") + type + tile_suffix(t, vec));
      }
      for (const Tile& t : kSmallCinTiles) names.push_back(std::string("conv3d_small_cin_") + type + tile_suffix(t, vec));
      names.push_back(std::string("conv3d_depthwise_") + type + "_v" + std::to_string(vec));
    }
  }
  return names;
}

}  // namespace volconv::metal_plan
