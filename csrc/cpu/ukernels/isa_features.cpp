// Compiled into each x86 kernel set's unit, with that unit's flags: the CPU
// features the compiler was allowed to use there, read from its predefined
// macros (not from our list), so a test can hold the list to what the
// compiler really did.
#define VOLCONV_CAT2(a, b) a##b
#define VOLCONV_CAT(a, b) VOLCONV_CAT2(a, b)

namespace volconv::cpu {

const char* VOLCONV_CAT(compiled_features_, VOLCONV_ISA_NAME)() {
  return ""
#if defined(__FMA__)
         " fma"
#endif
#if defined(__F16C__)
         " f16c"
#endif
#if defined(__AVX2__)
         " avx2"
#endif
#if defined(__AVX512F__)
         " avx512f"
#endif
#if defined(__AVX512BW__)
         " avx512bw"
#endif
#if defined(__AVX512VL__)
         " avx512vl"
#endif
#if defined(__AVX512DQ__)
         " avx512dq"
#endif
#if defined(__AVX512CD__)
         " avx512cd"
#endif
#if defined(__AVX512BF16__)
         " avx512bf16"
#endif
#if defined(__AVX512FP16__)
         " avx512fp16"
#endif
#if defined(__AVX512VNNI__)
         " avx512vnni"
#endif
#if defined(__AVX512IFMA__)
         " avx512ifma"
#endif
#if defined(__AVX512VBMI__)
         " avx512vbmi"
#endif
#if defined(__AVXVNNI__)
         " avxvnni"
#endif
#if defined(__AMX_TILE__)
         " amx-tile"
#endif
#if defined(__AMX_BF16__)
         " amx-bf16"
#endif
      ;
}

}  // namespace volconv::cpu
