// How conv3d fills its padding: with zeros (the default), or with the
// input's own values, as torch.nn.functional.pad's modes. The padded values
// are read through the kernels' address math: no padded copy is made.
#pragma once

#include <array>
#include <cstdint>

namespace volconv {

// For an axis of n elements, the value at padded coordinate c (c < 0 or
// c >= n) is:
enum class PaddingMode : std::uint8_t {
  zeros = 0,      // 0
  reflect = 1,    // x[-c] / x[2(n-1) - c]: mirrored without repeating the edge; padding < n
  replicate = 2,  // x[0] / x[n-1]: the edge repeated; n >= 1
  circular = 3,   // x[c + n] / x[c - n]: wrapped around; padding <= n
};

// Per spatial axis (D, H, W).
using PaddingModes = std::array<PaddingMode, 3>;

// "zeros", "reflect", "replicate", "circular".
const char* padding_mode_name(PaddingMode mode);

}  // namespace volconv
