// The padded shell of conv3d's input gradient under a padding mode, as
// disjoint boxes: what the CPU (cpu/padding_fold.cpp) and the Metal planner
// (metal_plan/conv_training_plan.cpp) each compute box by box and fold back
// into the input elements the padding read.
#pragma once

#include <cstdint>
#include <vector>

#include "conv_problem.h"

namespace volconv::detail {

// Padded coordinates: begin < 0 on the low side, >= the input size on the high.
struct PaddingShellBox {
  std::int64_t begin[3] = {0, 0, 0}, len[3] = {0, 0, 0};
};

// For each folding axis a, its low and high slabs, spanning the unpadded
// range along the axes before a and the padded range along the folding axes
// after it; n is the (unpadded) input size. Empty when nothing folds.
inline std::vector<PaddingShellBox> padding_shell_boxes(const PaddingFold& f, const Int3& n) {
  bool folds[3];
  for (int i = 0; i < 3; ++i) folds[i] = f.mode[i] != PaddingMode::zeros && (f.lo[i] > 0 || f.hi[i] > 0);
  std::vector<PaddingShellBox> boxes;
  for (int a = 0; a < 3; ++a) {
    if (!folds[a]) continue;
    for (int side = 0; side < 2; ++side) {
      PaddingShellBox b;
      for (int i = 0; i < 3; ++i) {
        const bool padded = i > a && folds[i];
        b.begin[i] = padded ? -f.lo[i] : 0;
        b.len[i] = padded ? n[i] + f.lo[i] + f.hi[i] : n[i];
      }
      b.begin[a] = side == 0 ? -f.lo[a] : n[a];
      b.len[a] = side == 0 ? f.lo[a] : f.hi[a];
      if (b.len[0] > 0 && b.len[1] > 0 && b.len[2] > 0) boxes.push_back(b);
    }
  }
  return boxes;
}

}  // namespace volconv::detail
