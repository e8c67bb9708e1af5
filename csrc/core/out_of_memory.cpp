#include "volconv/out_of_memory.h"

#include <cstdio>
#include <utility>

namespace volconv {
namespace {

std::string describe(const std::string& op, std::size_t bytes, const std::string& purpose) {
  std::string m = op.empty() ? std::string() : "[" + op + "] ";
  if (bytes == 0) return m + "Out of memory while allocating " + purpose + ".";
  char size[64];
  std::snprintf(size, sizeof size, "%zu bytes (%.2f GiB)", bytes, double(bytes) / double(std::size_t(1) << 30));
  return m + "Could not allocate " + size + " for " + purpose + ".";
}

}  // namespace

OutOfMemory::OutOfMemory(std::string op, std::size_t bytes, std::string purpose)
    : op_(std::move(op)), bytes_(bytes), purpose_(std::move(purpose)), message_(describe(op_, bytes_, purpose_)) {}

}  // namespace volconv
