// Targets other than x86-64: the x86 kernel sets do not exist.
#include "ukernel.h"

namespace volconv::cpu {
const KernelTable* kernels_avx2() { return nullptr; }
const KernelTable* kernels_avx512f() { return nullptr; }
const KernelTable* kernels_avx512bf16() { return nullptr; }
}  // namespace volconv::cpu
