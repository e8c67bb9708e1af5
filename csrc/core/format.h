// Small formatting helpers for error messages ("(1,5,5,5,4)").
// No iostreams: where the module carries its own static libstdc++ and the
// process has loaded another (numpy's, torch's), their locale facets can
// resolve across the two copies, and formatting a number through a stream
// crashed (seen with GCC 13 / Python 3.12 on Ubuntu 24.04).
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace volconv::detail {

template <std::size_t n>
std::string format_tuple(const std::array<std::int64_t, n>& values) {
  std::string s = "(";
  for (std::size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(values[i]);
  return s + ")";
}

}  // namespace volconv::detail
