// The CPU side of volconv::PackedConv3dWeights: the igemm family's packed
// panel (or the Winograd path's transformed weights) made once, and the key
// (kernel set, NR, layout) a call's plan must have for it to be used as it is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/backend.h"

namespace volconv::cpu {

struct PrepackedWeights {
  std::string isa;          // the kernel table's ISA when packed
  bool igemm = false;       // a panel is held (the plan was of the igemm family)
  bool bf16_pairs = false;  // which of the two layouts (weight_packing.h)
  int nr = 0;
  std::vector<float> f32;
  std::vector<std::uint16_t> bf16;
  // The winograd path's transformed weights (pack_winograd_f32), and
  // whether they are all finite (else calls run the direct plan).
  bool winograd = false;
  bool winograd_finite = true;
  std::vector<float> winograd_f32;
};

// Packs call.weight as the plan for call (on the active kernel table) would
// pack it per call; call.input needs its shape, dtype and strides only.
PrepackedWeights prepack_conv3d(const detail::ConvCall& call);

// The igemm and winograd drivers count each call that packs its weights itself, so a
// test can see a held panel used (results alone cannot: they are the same).
void count_call_packing();
namespace testing {
std::int64_t call_packing_count();
}

}  // namespace volconv::cpu
