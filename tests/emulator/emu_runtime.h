// The emulator's dispatcher, as used by the C ABI (emu_api.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shim/msl_shim.h"

namespace emu {

struct Launch {
  std::uint64_t grid[3];         // threadgroups per grid
  std::uint64_t threadgroup[3];  // threads per threadgroup
  std::uint64_t threadgroup_memory;
  // Runs only threadgroups whose linear index is a multiple of this (the
  // intensity bench samples large grids); 1 runs the whole grid.
  std::uint64_t sample_stride = 1;
};

struct BufferSizes {
  std::uint64_t input, weight, output;  // bytes
};

struct Counters {
  std::uint64_t bytes_read, bytes_written;  // device memory, by the kernel
  std::uint64_t threadgroups_run;
};

// Runs kernel `name` over the grid, threadgroups one after another.
Counters dispatch(const std::string& name, const Launch& launch, const KernelArgs& args, const BufferSizes& sizes);

std::vector<std::string> kernel_names();

// "" when every kernel registered under its own name; else what went wrong
// (a duplicate host_name), which every dispatch also reports.
std::string registry_error();

// How long a thread waits at a kernel's barrier before the dispatch fails
// with a diagnostic (default 120 s: far beyond any legal wait, even under
// a sanitizer; or VOLCONV_EMU_BARRIER_TIMEOUT_MS).
void set_barrier_timeout_ms(std::int64_t milliseconds);

// 0: Apple's lane layout; 1: a wrong one (for tests that must then fail).
void set_lane_layout(int layout);

}  // namespace emu
