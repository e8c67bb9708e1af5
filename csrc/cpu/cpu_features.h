// Which kernel table this process uses: the best one the CPU supports, unless
// a test or the VOLCONV_CPU_ISA environment variable forces another.
#pragma once

#include <string>
#include <vector>

#include "ukernels/ukernel.h"

namespace volconv::cpu {

const KernelTable& active_kernels();

// The tile set for an AVX-512 CPU: the "-2fma" sets (taller tiles) when one
// thread's 512-bit FMAs do at least kTwoFmaMinRatio x the flops of its 256-bit
// ones, i.e. the core has two 512-bit FMA pipes (Intel server cores: 2x;
// Zen 4, which splits a 512-bit FMA over two 256-bit pipes, and Intel parts
// with one 512-bit unit: 1x). Measured rather than read from cpuid: no cpuid
// leaf tells the pipes apart, and models differ within one family.
constexpr double kTwoFmaMinRatio = 1.5;
bool prefers_two_fma_tiles(const FmaRates& rates);

namespace testing {
// This machine's rates (measured once per process; zeros without AVX-512).
FmaRates machine_fma_rates();

// Each x86 kernel set of the list: the features the CPU must have, and those
// the compiler enabled for its unit (its predefined macros), space-separated.
struct IsaEntry {
  std::string name, required, compiled;
};
std::vector<IsaEntry> isa_table();
}  // namespace testing

}  // namespace volconv::cpu
