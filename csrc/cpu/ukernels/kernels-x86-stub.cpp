// Targets other than x86-64: the x86 kernel sets do not exist.
#include "ukernel.h"

namespace volconv::cpu {
const KernelTable* kernels_avx2() { return nullptr; }
const KernelTable* kernels_avx512f() { return nullptr; }
const KernelTable* kernels_avx512bf16() { return nullptr; }
const KernelTable* kernels_avx512f_2fma() { return nullptr; }
const KernelTable* kernels_avx512bf16_2fma() { return nullptr; }
FmaRates measure_fma_rates_avx512f() { return {0.0, 0.0}; }
}  // namespace volconv::cpu
