// Which kernel table this process uses: the best one the CPU supports, unless
// a test or the VOLCONV_CPU_ISA environment variable forces another.
#pragma once

#include "ukernels/ukernel.h"

namespace volconv::cpu {

const KernelTable& active_kernels();

}  // namespace volconv::cpu
