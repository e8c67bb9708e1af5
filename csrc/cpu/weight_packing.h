// Weights packed once per call into the layouts the micro-kernels stream
// through (never cached: a caller may change the array in place). Output
// channels past C_out/groups are zero, so tails along N cost no branches.
#pragma once

#include <cstdint>
#include <vector>

#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv::cpu {

// f32 [group][NR block][tap][ci][NR]: one block's panel is contiguous and
// each tap's slice of it starts at tap * cin_g * NR.
std::vector<float> pack_igemm_f32(const ConvGeometry& g, const ConstTensorView& w, int nr);

// bf16 bits, pair-interleaved for vdpbf16ps: [group][NR block][tap][ci/2][NR][2]
// (cin_g even). Same tap offsets (in uint16 units) as the f32 layout.
std::vector<std::uint16_t> pack_igemm_bf16_pairs(const ConvGeometry& g, const ConstTensorView& w, int nr);

// The row drivers' f32 weights [kd][kh][ci][kw][channel], channels padded to
// c_pad (depthwise and C_in 1: [tap][channel]).
std::vector<float> pack_dwconv_f32(const ConvGeometry& g, const ConstTensorView& w, std::int64_t c_pad);

// Small C_out per group (f32-conv-small-cout.h): f32 [group][kd][kh][co in
// group][kw][ci], each channel's KW * C_in run padded with zeros to run_pad.
std::vector<float> pack_small_cout_f32(const ConvGeometry& g, const ConstTensorView& w, std::int64_t run_pad);

// Winograd F(2x2x2, 3x3x3) weights (3x3x3 kernels): G g G^T per (co, ci),
// computed in float64 and rounded once, as f32 [group][NR block][p][ci][NR]
// for the 64 transformed positions p = (a * 4 + b) * 4 + c. `finite` is
// false when any transformed weight is not finite (the driver then runs
// another path: a transformed inf or NaN would spread across a tile).
std::vector<float> pack_winograd_f32(const ConvGeometry& g, const ConstTensorView& w, int nr, bool& finite);

}  // namespace volconv::cpu
