// Small formatting helpers for error messages ("(1,5,5,5,4)").
#pragma once

#include <array>
#include <cstdint>
#include <sstream>
#include <string>

namespace volconv::detail {

template <std::size_t n>
std::string format_tuple(const std::array<std::int64_t, n>& values) {
  std::ostringstream s;
  s << '(';
  for (std::size_t i = 0; i < n; ++i) s << (i ? "," : "") << values[i];
  s << ')';
  return s.str();
}

}  // namespace volconv::detail
