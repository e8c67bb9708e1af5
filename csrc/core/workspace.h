// Working buffers that say what they are when memory runs out: a failed
// allocation throws OutOfMemory with the bytes and the buffer's purpose,
// and the op's front door (naming_allocation_failures) adds the op's name,
// so a user sees "[conv3d] Could not allocate ... for the packed weights"
// instead of a bare "std::bad_alloc".
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "volconv/out_of_memory.h"

namespace volconv::detail {

// Resizes buf to count elements (new ones set to fill).
template <class T>
void workspace_resize(std::vector<T>& buf, std::size_t count, const char* purpose, const T& fill = T{}) {
  const std::size_t max_count = std::numeric_limits<std::size_t>::max() / sizeof(T);
  const std::size_t bytes = count <= max_count ? count * sizeof(T) : std::numeric_limits<std::size_t>::max();
  try {
    buf.resize(count, fill);
  } catch (const std::bad_alloc&) {
    throw OutOfMemory("", bytes, purpose);
  } catch (const std::length_error&) {  // more than a vector can hold
    throw OutOfMemory("", bytes, purpose);
  }
}

// A new buffer of count elements, each fill.
template <class T>
std::vector<T> workspace(std::size_t count, const char* purpose, const T& fill = T{}) {
  std::vector<T> buf;
  workspace_resize(buf, count, purpose, fill);
  return buf;
}

// Runs fn; an allocation failure inside it leaves as an OutOfMemory naming op.
template <class Fn>
void naming_allocation_failures(const char* op, Fn&& fn) {
  try {
    fn();
  } catch (const OutOfMemory& e) {
    if (!e.op().empty()) throw;
    throw OutOfMemory(op, e.bytes(), e.purpose());
  } catch (const std::bad_alloc&) {
    throw OutOfMemory(op, 0, "a working buffer");
  }
}

}  // namespace volconv::detail
