// PROTOTYPE helpers (tc_toeplitz.cuh): the 16-bit types' mma.sync, packing
// and non-finite masks, ldmatrix, and a counter of the blocks that took
// the FFMA redo. Included after csrc/cuda/depthwise_kernels.cuh, whose
// cp.async helpers the prototype uses.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstring>
#include <type_traits>

namespace tct {

// Per 16-bit type: the mma, two floats packed, and kExp / kOne for the
// non-finite test ((x & kExp) + kOne sets a half's top bit exactly when its
// exponent is all ones: inf or NaN).
#define TCT_MMA(type)                                                                                 \
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." type "." type                                   \
               ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"                          \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                          \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1))

template <class T>
struct Op {
  static constexpr bool kBf16 = std::is_same<T, __nv_bfloat16>::value;
  static_assert(kBf16 || std::is_same<T, __half>::value, "16-bit storage only");
  static constexpr unsigned kExp = kBf16 ? 0x7f807f80u : 0x7c007c00u, kOne = kBf16 ? 0x00800080u : 0x04000400u;
  static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    if constexpr (kBf16)
      TCT_MMA("bf16");
    else
      TCT_MMA("f16");
  }
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    unsigned u;
    if constexpr (kBf16) {
      const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
      memcpy(&u, &v, 4);
    } else {
      const __half2 v = __floats2half2_rn(lo, hi);
      memcpy(&u, &v, 4);
    }
    return u;
  }
  static __device__ __forceinline__ float f(const T* p) { return float(*p); }
  static __device__ __forceinline__ void put(T* p, float v) { *p = T(v); }
};

__device__ __forceinline__ void ldm4(unsigned (&r)[4], const void* p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ unsigned g_fallback_blocks;  // blocks that took the FFMA redo (proto.cu reads it)

}  // namespace tct
