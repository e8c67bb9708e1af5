// AVX-512 with AVX512_BF16 (Zen 4, Cooper Lake, Sapphire Rapids): the
// AVX-512F set plus vdpbf16ps kernels and a bf16 tile store that rounds
// with vcvtneps2bf16 (round to nearest even, as the scalar path does).
#include "bf16-igemm-dpbf16.h"
#include "vec-avx512f.h"

namespace volconv::cpu {
namespace {

bool store_tile_bf16(const TileStore& t) {
  if (t.storage != kBF16) return kernels_avx512f()->store_tile(t);
  for (int r = 0; r < t.mr; ++r) {
    const float* src = t.c + std::int64_t(r) * t.ldc;
    auto* dst = static_cast<std::uint16_t*>(t.rows[r]);
    int j = 0;
    for (; j + 16 <= t.nc; j += 16)
      _mm256_storeu_si256((__m256i*)(dst + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + j)));
    if (j < t.nc) {
      const __mmask16 m = VecAvx512f::mask(t.nc - j);
      _mm256_mask_storeu_epi16(dst + j, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + j)));
    }
  }
  return true;
}

// vdpbf16ps: 2 multiply-adds per fp32 lane per instruction. Chains start
// from distinct values so the compiler cannot fold them into one.
double bf16_probe(std::int64_t iters) {
  constexpr int kChains = 24;
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  __m512 acc[kChains];
#pragma GCC unroll 32
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(float(j) * 0.125f);
  for (std::int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 32
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 total = acc[0];
  for (int j = 1; j < kChains; ++j) total = _mm512_add_ps(total, acc[j]);
  volatile float keep = _mm512_reduce_add_ps(total);
  (void)keep;
  return double(iters) * kChains * 16 * 4.0;
}

// The f32 kernels are those of an AVX-512F set (either tile set); this set
// adds the vdpbf16ps kernels and the rounding bf16 store.
KernelTable with_bf16(const KernelTable& f32, const char* isa) {
  KernelTable t = f32;
  t.isa = isa;
  t.n_bf16_igemm = 4;
  t.bf16_igemm[0] = {8, 16, bf16_igemm_dpbf16<8, 1>, "bf16-igemm-8x16-avx512bf16"};
  t.bf16_igemm[1] = {12, 32, bf16_igemm_dpbf16<12, 2>, "bf16-igemm-12x32-avx512bf16"};
  t.bf16_igemm[2] = {8, 48, bf16_igemm_dpbf16<8, 3>, "bf16-igemm-8x48-avx512bf16"};
  t.bf16_igemm[3] = {6, 64, bf16_igemm_dpbf16<6, 4>, "bf16-igemm-6x64-avx512bf16"};
  t.store_tile = store_tile_bf16;
  t.bf16_probe = bf16_probe;
  return t;
}

}  // namespace

const KernelTable* kernels_avx512bf16() {
  static const KernelTable table = with_bf16(*kernels_avx512f(), "avx512bf16");
  return &table;
}

const KernelTable* kernels_avx512bf16_2fma() {
  static const KernelTable table = with_bf16(*kernels_avx512f_2fma(), "avx512bf16-2fma");
  return &table;
}

}  // namespace volconv::cpu
