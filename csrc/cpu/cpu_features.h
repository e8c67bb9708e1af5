// Which kernel table this process uses: the best one the CPU supports, unless
// a test or the VOLCONV_CPU_ISA environment variable forces another.
#pragma once

#include <string>
#include <vector>

#include "ukernels/ukernel.h"

namespace volconv::cpu {

const KernelTable& active_kernels();

namespace testing {
// Each x86 kernel set of the list: the features the CPU must have, and those
// the compiler enabled for its unit (its predefined macros), space-separated.
struct IsaEntry {
  std::string name, required, compiled;
};
std::vector<IsaEntry> isa_table();
}  // namespace testing

}  // namespace volconv::cpu
