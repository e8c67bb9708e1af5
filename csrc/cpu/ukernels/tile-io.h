// Vectorised conversions at the edges of the kernels: writing an fp32 tile
// to the output's storage, and converting an input row to fp32 for the
// packed-A paths. Templates on vector traits V; instantiated per ISA.
#pragma once

#include <cstdint>

#include "ukernel.h"

namespace {

template <class V>
bool store_tile(const volconv::cpu::TileStore& t) {
  using volconv::cpu::kBF16;
  using volconv::cpu::kF16;
  using volconv::cpu::kF32;
  constexpr int L = V::L;
  if (t.storage == kF16 && !V::kHasF16) return false;
  if (t.storage == kBF16 && !V::kHasBF16Store) return false;  // the caller rounds element by element
  for (int r = 0; r < t.mr; ++r) {
    const float* src = t.c + std::int64_t(r) * t.ldc;
    int j = 0;
    if (t.storage == kF32) {
      float* dst = static_cast<float*>(t.rows[r]);
      if (V::kHasStream && t.stream && t.nc % L == 0 && reinterpret_cast<std::uintptr_t>(dst) % (4 * L) == 0) {
        for (; j < t.nc; j += L) V::stream(dst + j, V::load(src + j));
        continue;
      }
      for (; j + L <= t.nc; j += L) V::store(dst + j, V::load(src + j));
      if (j < t.nc) V::store_partial(dst + j, V::load_partial(src + j, t.nc - j), t.nc - j);
    } else if (t.storage == kBF16) {
      std::uint16_t* dst = static_cast<std::uint16_t*>(t.rows[r]);
      for (; j + L <= t.nc; j += L) V::store_bf16(dst + j, V::load(src + j));
      if (j < t.nc) V::store_bf16_partial(dst + j, V::load_partial(src + j, t.nc - j), t.nc - j);
    } else {
      std::uint16_t* dst = static_cast<std::uint16_t*>(t.rows[r]);
      for (; j + L <= t.nc; j += L) V::store_f16(dst + j, V::load(src + j));
      if (j < t.nc) V::store_f16_partial(dst + j, V::load_partial(src + j, t.nc - j), t.nc - j);
    }
  }
  return true;
}

template <class V>
bool convert_row(float* dst, const void* src, std::int64_t n, int storage) {
  using volconv::cpu::kBF16;
  using volconv::cpu::kF16;
  using volconv::cpu::kF32;
  constexpr int L = V::L;
  std::int64_t j = 0;
  if (storage == kF32) {
    const float* s = static_cast<const float*>(src);
    for (; j + L <= n; j += L) V::store(dst + j, V::load(s + j));
    if (j < n) V::store_partial(dst + j, V::load_partial(s + j, int(n - j)), int(n - j));
    return true;
  }
  const std::uint16_t* s = static_cast<const std::uint16_t*>(src);
  if (storage == kF16 && V::kHasF16) {
    for (; j + L <= n; j += L) V::store(dst + j, V::load_f16(s + j));
    if (j < n) V::store_partial(dst + j, V::load_f16_partial(s + j, int(n - j)), int(n - j));
    return true;
  }
  if (storage == kBF16 && V::kHasBF16Load) {
    for (; j + L <= n; j += L) V::store(dst + j, V::load_bf16(s + j));
    if (j < n) V::store_partial(dst + j, V::load_bf16_partial(s + j, int(n - j)), int(n - j));
    return true;
  }
  return false;
}

}  // namespace
