// The exception volconv throws when memory it needs cannot be allocated:
// the result, or a working buffer such as the packed weights. It is a
// std::bad_alloc, so existing handlers still catch it, and its what() names
// the op, the bytes asked for and what they were for (Python: MemoryError).
#pragma once

#include <cstddef>
#include <new>
#include <string>

namespace volconv {

class OutOfMemory : public std::bad_alloc {
 public:
  // op may be empty while the error travels up from a kernel; the op's
  // front door fills it in. bytes is 0 when the size is not known.
  OutOfMemory(std::string op, std::size_t bytes, std::string purpose);

  const char* what() const noexcept override { return message_.c_str(); }
  const std::string& op() const noexcept { return op_; }
  std::size_t bytes() const noexcept { return bytes_; }
  const std::string& purpose() const noexcept { return purpose_; }

 private:
  std::string op_;
  std::size_t bytes_;
  std::string purpose_;
  std::string message_;
};

}  // namespace volconv
