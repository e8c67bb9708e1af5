// The CPU backend's knobs: the size of its thread pool, whose threads run
// its work, and (for tests and benchmarks) which instruction-set kernels it
// uses.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace volconv::cpu {

// Threads the CPU backend splits each conv3d over. The default is the number
// of CPUs this process may run on (its affinity mask; on macOS the
// performance cores), or the environment variable VOLCONV_NUM_THREADS when set. n <= 0 restores the default.
void set_num_threads(int n);
int get_num_threads();

// Runs the CPU backend's parallel work on a host's own threads (PyTorch's
// at::parallel_for, a job system) instead of the OpenMP team already in the
// process or volconv's pool. A call is split into `chunks` pieces (at most
// get_num_threads()); the executor must call run(i) once for each i in
// [0, chunks), on any threads, and return when all have returned (run never
// throws; a call whose chunks did not all run throws std::runtime_error).
// Results are bit-identical to the pool's. An empty executor restores the
// default. A fork() child never uses the parent's executor (its threads did
// not survive the fork).
using ParallelExecutor = std::function<void(int chunks, const std::function<void(int)>& run)>;
void set_parallel_executor(ParallelExecutor executor);

// Whether a float32 3x3x3 convolution at stride and dilation 1 with 16+
// channels per group may run Winograd F(2x2x2, 3x3x3) (default true): about
// 2x faster, its rounding a different sum of the same products (README,
// "Winograd for 3x3x3 convolutions"). Process-wide; false gives the direct
// paths' results.
void set_winograd(bool enabled);
bool winograd_enabled();

// Kernel sets this CPU can run, best first ("avx512bf16", "avx512f", "avx2",
// "neon", "generic"; each AVX-512 set also as "<set>-2fma", its tiles for
// cores with two 512-bit FMA pipes, first where the CPU has them), and the
// one in use. force_isa("") restores automatic
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
