// Chooses kernel, tile and launch geometry for one conv3d call. Order of
// preference: the specialised kernels where the general GEMM's shape is poor
// (depthwise, tiny C_in, 1x1x1), then the general implicit GEMM with the
// tile that wastes least along C_out.
#include "conv3d_plan.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

namespace volconv::metal_plan {
namespace {

static_assert(sizeof(Conv3dParams) == 6 * 8 + 36 * 4, "Conv3dParams must match the MSL layout: no padding");
// The kernels read the modes and activations by these codes.
static_assert(int(PaddingMode::zeros) == PadModeCode::ZEROS && int(PaddingMode::reflect) == PadModeCode::REFLECT &&
                  int(PaddingMode::replicate) == PadModeCode::REPLICATE &&
                  int(PaddingMode::circular) == PadModeCode::CIRCULAR,
              "padding mode codes");
static_assert(int(Activation::none) == ActivationCode::NONE && int(Activation::relu) == ActivationCode::RELU &&
                  int(Activation::silu) == ActivationCode::SILU &&
                  int(Activation::gelu_tanh) == ActivationCode::GELU_TANH,
              "activation codes");

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("[conv3d] " + message); }

struct Tile {
  int bm, bn, bk, wm, wn;
};

#define VOLCONV_TILE_ENTRY(T, BM, BN, BK, WM, WN, VEC, IDX) Tile{BM, BN, BK, WM, WN},
const Tile kGemmTiles[] = {VOLCONV_GEMM_TILES(VOLCONV_TILE_ENTRY, _, _, _)};
const Tile kSmallCinTiles[] = {VOLCONV_SMALL_CIN_TILES(VOLCONV_TILE_ENTRY, _, _, _)};
#undef VOLCONV_TILE_ENTRY

// Every instantiation in metal/*.metal, named by the same macros the
// instantiations use (conv3d_params.h), so a plan names only real kernels.
struct Kernel {
  const char* name;
  KernelFamily family;
  const char* type;  // MSL element type
  Tile tile;         // depthwise: all zero
  int vec;
  bool large;  // 64-bit index arithmetic
};

#define VOLCONV_IS_LARGE(IDX) (sizeof(VOLCONV_INDEX_TYPE(IDX)) == 8)
#define VOLCONV_GEMM_ENTRY(T, BM, BN, BK, WM, WN, VEC, IDX)                                                \
  Kernel{VOLCONV_TILE_KERNEL_NAME(gemm, T, BM, BN, BK, WM, WN, VEC, IDX), KernelFamily::gemm, #T,            \
         Tile{BM, BN, BK, WM, WN}, VEC, VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_POINTWISE_ENTRY(T, BM, BN, BK, WM, WN, VEC, IDX)                                           \
  Kernel{VOLCONV_TILE_KERNEL_NAME(pointwise, T, BM, BN, BK, WM, WN, VEC, IDX), KernelFamily::pointwise, #T,  \
         Tile{BM, BN, BK, WM, WN}, VEC, VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_SMALL_CIN_ENTRY(T, BM, BN, BK, WM, WN, VEC, IDX)                                           \
  Kernel{VOLCONV_TILE_KERNEL_NAME(small_cin, T, BM, BN, BK, WM, WN, VEC, IDX), KernelFamily::small_cin, #T,  \
         Tile{BM, BN, BK, WM, WN}, VEC, VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_DEPTHWISE_ENTRY(T, VEC, IDX)                                                                   \
  Kernel{VOLCONV_DEPTHWISE_KERNEL_NAME(T, VEC, IDX), KernelFamily::depthwise, #T, Tile{0, 0, 0, 0, 0}, VEC, \
         VOLCONV_IS_LARGE(IDX)},
#define VOLCONV_KERNELS_OF(T)                        \
  VOLCONV_GEMM_KERNELS(VOLCONV_GEMM_ENTRY, T)           \
  VOLCONV_GEMM_KERNELS(VOLCONV_POINTWISE_ENTRY, T)      \
  VOLCONV_SMALL_CIN_KERNELS(VOLCONV_SMALL_CIN_ENTRY, T) \
  VOLCONV_DEPTHWISE_KERNELS(VOLCONV_DEPTHWISE_ENTRY, T)
const Kernel kKernels[] = {VOLCONV_KERNELS_OF(float) VOLCONV_KERNELS_OF(half) VOLCONV_KERNELS_OF(bfloat)};
#undef VOLCONV_KERNELS_OF
#undef VOLCONV_DEPTHWISE_ENTRY
#undef VOLCONV_SMALL_CIN_ENTRY
#undef VOLCONV_POINTWISE_ENTRY
#undef VOLCONV_GEMM_ENTRY
#undef VOLCONV_IS_LARGE

bool same_tile(const Tile& a, const Tile& b) {
  return a.bm == b.bm && a.bn == b.bn && a.bk == b.bk && a.wm == b.wm && a.wn == b.wn;
}

const Kernel& find_kernel(KernelFamily family, const char* type, const Tile& tile, int vec, bool large) {
  for (const Kernel& k : kKernels)
    if (k.family == family && std::string(k.type) == type && same_tile(k.tile, tile) && k.vec == vec &&
        k.large == large)
      return k;
  throw std::logic_error(std::string("[volconv] internal: no ") + family_name(family) + " kernel for " + type);
}

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
  for (int i = 0; i < 3; ++i) p.pad_mode[i] = std::int32_t(c.padding_mode[i]);
  p.activation = std::int32_t(c.epilogue.activation);
  p.has_bias = c.epilogue.bias.has_value();
  p.has_residual = c.epilogue.residual.has_value();
  return p;
}

std::uint64_t grid_dim(std::int64_t v, const char* what) {
  if (v > std::int64_t(std::numeric_limits<std::uint32_t>::max()))
    fail(std::string("The GPU grid is too large along ") + what + ": " + std::to_string(v) + " threadgroups.");
  return std::uint64_t(v);
}

std::string tile_args(const char* type, const Tile& t, int vec) {
  return std::string(type) + ", " + std::to_string(t.bm) + ", " + std::to_string(t.bn) + ", " +
         std::to_string(t.bk) + ", " + std::to_string(t.wm) + ", " + std::to_string(t.wn) + ", " +
         std::to_string(vec);
}

const char* index_arg(bool large) { return large ? ", int64_t" : ", int32_t"; }

// Threadgroup bytes, from the layouts in metal/conv3d_params.h.
std::int64_t gemm_memory(const Tile& t, std::int64_t esize) {
  return std::int64_t(gemm_threadgroup_elements(t.bm, t.bn, t.bk, int(esize))) * esize;
}

// Metal wants threadgroup memory lengths in multiples of 16 bytes.
std::int64_t round_up_16(std::int64_t bytes) { return (bytes + 15) / 16 * 16; }

std::int64_t small_cin_memory(const Tile& t, std::int64_t patch_elements, std::int64_t esize) {
  return round_up_16((small_cin_patch_offset(t.bn, t.bk, int(esize)) + patch_elements) * esize);
}

// Whether some offset a kernel forms for this problem can pass 2^31 - 1,
// so the 64-bit ("_large") kernels must run it. The bound sums, per term,
// the largest magnitude a kernel multiplies out: for the input, the window
// origin o * stride - pad_lo (negative in the padding, formed before the
// gather skips it) and the tap k * dilation, over the whole output; for the
// output, every row a threadgroup may touch (M plus a tile of slack); and
// the weight. Computed in double: exact for integers below 2^53, and
// anything larger is large anyway.
bool needs_64bit_index(const Conv3dParams& p) {
  double input = double(p.batch) * double(p.in_stride_n) + double(p.c_in);
  const double strides[3] = {double(p.in_stride_d), double(p.in_stride_h), double(p.c_in)};
  for (int i = 0; i < 3; ++i) {
    const double origin = std::max(double(p.pad_lo[i]), double(p.out_size[i] - 1) * p.stride[i]);
    input += (origin + double(p.k_size[i] - 1) * p.dilation[i]) * strides[i];
  }
  const double output = (double(p.gemm_m) + 256.0) * double(p.c_out);
  const double weight = double(p.c_out) * double(p.gemm_k);
  const double limit = double(std::numeric_limits<std::int32_t>::max());
  return input > limit || output > limit || weight > limit;
}

bool fits(std::int64_t bytes, std::int64_t threads, const DeviceLimits& limits) {
  return bytes <= limits.max_threadgroup_memory && threads <= limits.max_threads_per_threadgroup;
}

void set_kernel(Conv3dPlan& plan, const Kernel& k) {
  plan.kernel_name = k.name;
  plan.family = k.family;
  plan.index_bits = k.large ? 64 : 32;
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

bool plan_depthwise(Conv3dPlan& plan, const char* type, bool large, std::int64_t esize, const DeviceLimits& limits) {
  const Conv3dParams& p = plan.params;
  if (p.c_in_g != 1 || p.groups == 1) return false;
  const std::int64_t bytes = depthwise_threadgroup_elements(p.taps) * esize;
  if (!fits(bytes, DepthwiseTile::THREADS, limits)) return false;
  // Vector loads need input channel == output channel and aligned channels.
  const int vec = (p.c_out_g == 1 && p.c_out % 4 == 0) ? 4 : 1;
  const int positions = DepthwiseTile::THREADS / (DepthwiseTile::CHANNELS / vec) * DepthwiseTile::POSITIONS_PER_THREAD;
  set_kernel(plan, find_kernel(KernelFamily::depthwise, type, Tile{0, 0, 0, 0, 0}, vec, large));
  plan.template_args = std::string(type) + ", " + std::to_string(vec) + index_arg(large);
  plan.bm = positions;
  plan.bn = DepthwiseTile::CHANNELS;
  plan.vec = vec;
  plan.threadgroup = {DepthwiseTile::THREADS, 1, 1};
  plan.grid = {grid_dim(ceil_div(p.gemm_m, positions), "M"), grid_dim(ceil_div(p.c_out, DepthwiseTile::CHANNELS), "C_out"),
               1};
  plan.threadgroup_memory_bytes = std::uint64_t(bytes);
  return true;
}

bool plan_small_cin(Conv3dPlan& plan, const char* type, bool large, std::int64_t esize, const DeviceLimits& limits) {
  Conv3dParams& p = plan.params;
  if (p.c_in_g > 4 || p.taps == 1) return false;
  // A threadgroup covers a segment of one output row; short rows would leave
  // most of it idle, the general kernel tiles across rows instead.
  const Tile& preferred = p.c_out_g > 32 ? kSmallCinTiles[0] : p.c_out_g > 16 ? kSmallCinTiles[1] : kSmallCinTiles[2];
  if (p.out_size[2] < preferred.bm / 2) return false;
  const int vec = p.gemm_k % 4 == 0 ? 4 : 1;
  for (const Tile* t : {&preferred, &kSmallCinTiles[2]}) {
    const std::int64_t patch_w = std::int64_t(t->bm - 1) * p.stride[2] + std::int64_t(p.k_size[2] - 1) * p.dilation[2] + 1;
    const std::int64_t patch = small_cin_patch_elements(p.k_size[0], p.k_size[1], patch_w, p.c_in_g);
    const std::int64_t bytes = small_cin_memory(*t, patch, esize);
    if (!fits(bytes, t->wm * t->wn * 32, limits)) continue;
    set_kernel(plan, find_kernel(KernelFamily::small_cin, type, *t, vec, large));
    plan.template_args = tile_args(type, *t, vec) + index_arg(large);
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

bool plan_gemm(Conv3dPlan& plan, const char* type, bool large, std::int64_t esize, const DeviceLimits& limits) {
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
  set_kernel(plan, find_kernel(pointwise ? KernelFamily::pointwise : KernelFamily::gemm, type, *best, vec, large));
  plan.template_args = tile_args(type, *best, vec) + (pointwise ? ", true" : ", false") + index_arg(large);
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
         std::to_string(plan.vec) + ", " + std::to_string(plan.index_bits) + "-bit index)";
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
  // The message prints the very sum it compares.
  const std::uint64_t dynamic = threadgroup_memory_length(plan);
  const std::uint64_t needed = dynamic + facts.static_threadgroup_memory;
  if (needed > facts.device_max_threadgroup_memory)
    throw std::runtime_error("[volconv] " + describe(plan) + " needs " + std::to_string(needed) +
                             " bytes of threadgroup memory (" + std::to_string(dynamic) + " for its tiles + " +
                             std::to_string(facts.static_threadgroup_memory) + " static); this GPU has " +
                             std::to_string(facts.device_max_threadgroup_memory) + ".");
}

Conv3dPlan plan_conv3d(const ConvGeometry& geometry, DType dtype, const DeviceLimits& limits,
                       const PlanOptions& options) {
  const char* type = msl_type(dtype);
  if (limits.simd_width != 32)
    fail("The GPU kernels are written for 32-wide simdgroups, but the device reports " +
         std::to_string(limits.simd_width) + ".");
  Conv3dPlan plan;
  plan.dtype = dtype;
  plan.params = make_params(geometry);
  const std::int64_t esize = std::int64_t(dtype_size(dtype));
  const bool large = options.force_64bit_index || needs_64bit_index(plan.params);
  if (plan_depthwise(plan, type, large, esize, limits) || plan_small_cin(plan, type, large, esize, limits) ||
      plan_gemm(plan, type, large, esize, limits))
    return plan;
  fail("No GPU kernel fits the device limits (threadgroup memory " + std::to_string(limits.max_threadgroup_memory) +
       " bytes, " + std::to_string(limits.max_threads_per_threadgroup) + " threads per threadgroup).");
}

std::vector<std::string> plannable_kernel_names() {
  std::vector<std::string> names;
  for (const Kernel& k : kKernels) names.emplace_back(k.name);
  return names;
}

namespace {
LibraryUnit make_unit(const std::string& key, int family, int dtype) {
  return {key, "#define VOLCONV_LIBRARY_FAMILY " + std::to_string(family) + "\n#define VOLCONV_LIBRARY_DTYPE " +
                   std::to_string(dtype) + "\n"};
}
}  // namespace

LibraryUnit library_unit(KernelFamily family, DType dtype) {
  int f = 0, t = 0;
  switch (family) {
    case KernelFamily::gemm: f = VOLCONV_FAMILY_gemm; break;
    case KernelFamily::pointwise: f = VOLCONV_FAMILY_pointwise; break;
    case KernelFamily::small_cin: f = VOLCONV_FAMILY_small_cin; break;
    case KernelFamily::depthwise: f = VOLCONV_FAMILY_depthwise; break;
  }
  switch (dtype) {
    case DType::float32: t = VOLCONV_DTYPE_float; break;
    case DType::float16: t = VOLCONV_DTYPE_half; break;
    case DType::bfloat16: t = VOLCONV_DTYPE_bfloat; break;
    default: throw std::invalid_argument("[conv3d] float64 has no GPU kernels.");
  }
  return make_unit(std::string(family_name(family)) + "/" + msl_type(dtype), f, t);
}

LibraryUnit self_check_library_unit() { return make_unit("self_check", VOLCONV_FAMILY_self_check, VOLCONV_DTYPE_float); }

}  // namespace volconv::metal_plan
