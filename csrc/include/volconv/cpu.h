// The CPU backend's knobs: the size of its thread pool, and (for tests and
// benchmarks) which instruction-set kernels it uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace volconv::cpu {

// Threads the CPU backend splits each conv3d over. The default is the number
// of CPUs this process may run on (its affinity mask; on macOS the
// performance cores), or the environment variable VOLCONV_NUM_THREADS when set. n <= 0 restores the default.
void set_num_threads(int n);
int get_num_threads();

// Kernel sets this CPU can run, best first ("avx512bf16", "avx512f", "avx2",
// "neon", "generic"), and the one in use. force_isa("") restores automatic
// choice (also settable through VOLCONV_CPU_ISA); an ISA the CPU lacks throws
// std::invalid_argument. Meant for tests and benchmarks.
std::vector<std::string> supported_isas();
std::string active_isa();
void force_isa(const std::string& name);

// GFLOP/s of independent FMA (or, with bf16, vdpbf16ps) chains on all
// get_num_threads() threads with the active kernel set: the ceiling the
// benchmark reports "% of peak" against. 0 when bf16 has no native kernel.
double measured_peak_gflops(bool bf16);

}  // namespace volconv::cpu
