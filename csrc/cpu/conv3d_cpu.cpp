// The CPU backend's entry: picks the path for a validated call.
//   float64 output               -> direct loop (true float64 accumulation)
//   depthwise, f32 input         -> channel-vectorised dwconv kernel
//   f32, C_in 1, groups 1, narrow W window -> direct row kernel, C_out in the lanes
//   bf16 x bf16, even C_in/group -> vdpbf16ps igemm (CPUs with avx512_bf16)
//   f32, C_in <= 4, groups 1     -> W window x C_in folded into K, read in place
//   C_in/group <= 4              -> taps folded into K, k-major gathered tile
//   f32 input                    -> f32 igemm reading the input in place
//   everything else              -> igemm on gathered, f32-converted rows
// Pointwise (1x1x1) convolutions are the igemm with one tap: a plain GEMM.
#include <string>

#include "../core/backend.h"
#include "conv3d_igemm.h"
#include "cpu_features.h"
#include "nonfinite_weights.h"
#include "volconv/cpu.h"

namespace volconv::cpu {

void conv3d_direct(const detail::ConvCall& call);

namespace {

// Below this many input channels per group a tap is too short for the row
// pointer loop; the fold-W and small-C_in paths fold taps into K instead.
constexpr std::int64_t kSmallCin = 4;
// Folding the W window into K pays when a (kd, kh) run is long enough for
// the direct kernel's per-tap cost (loading MR row pointers).
constexpr std::int64_t kFoldWMinK = 8;

thread_local std::string t_last_path;
thread_local std::int64_t t_k_chunks = 1;

std::string run(const detail::ConvCall& call) {
  const ConvGeometry& g = call.geometry;
  if (call.output.dtype == DType::float64) {
    conv3d_direct(call);
    return "direct";
  }
  const KernelTable& kt = active_kernels();
  const DType in = call.input.dtype, wt = call.weight.dtype;
  const bool channels_contiguous = call.input.strides[4] == 1 || g.in_channels == 1;
  const std::int64_t cin = g.in_channels_per_group;
  if (g.groups == g.in_channels && g.out_channels == g.in_channels && g.groups > 1 && in == DType::float32 &&
      channels_contiguous)
    return "dwconv:" + conv3d_dwconv(call, kt);
  if (in == DType::bfloat16 && wt == DType::bfloat16 && kt.n_bf16_igemm > 0 && cin % 2 == 0 && cin > kSmallCin &&
      channels_contiguous)
    return conv3d_igemm(call, kt, IgemmMode::direct_bf16);
  const bool fold_w = cin <= kSmallCin && in == DType::float32 && g.groups == 1 && call.input.strides[4] == 1 &&
                      call.input.strides[3] == cin && g.params.dilation[2] == 1 && g.kernel[2] * cin >= kFoldWMinK;
  if (g.in_channels == 1 && g.groups == 1 && in == DType::float32 && !fold_w) return "cin1:" + conv3d_cin1(call, kt);
  if (fold_w) return conv3d_igemm(call, kt, IgemmMode::fold_w);
  if (cin <= kSmallCin) return conv3d_igemm(call, kt, IgemmMode::small_cin);
  if (in == DType::float32 && channels_contiguous) return conv3d_igemm(call, kt, IgemmMode::direct_f32);
  return conv3d_igemm(call, kt, IgemmMode::packed_a);
}

}  // namespace

// Core returns before an empty output reaches a backend.
void conv3d(const detail::ConvCall& call) {
  t_k_chunks = 1;
  t_last_path = run(call);
  propagate_nonfinite_weights(call);
}

void note_k_chunks(std::int64_t chunks) { t_k_chunks = chunks; }

std::string last_path() { return t_last_path; }
std::int64_t last_k_chunks() { return t_k_chunks; }

}  // namespace volconv::cpu
