#include "float_rows.h"

namespace volconv::cpu {

void store_row(const TensorView& r, const KernelTable& kt, std::int64_t n, std::int64_t od, std::int64_t oh,
               const float* v, std::int64_t wo, std::int64_t C, std::vector<void*>& ptrs) {
  const Shape5& s = r.strides;
  const std::int64_t es = std::int64_t(dtype_size(r.dtype));
  char* row = static_cast<char*>(r.data) + (n * s[0] + od * s[1] + oh * s[2]) * es;
  if (s[4] == 1 && r.dtype != DType::float64) {
    // A packed row is one run of wo x C values: one vector loop instead of a
    // partial vector per position (a few output channels).
    if (s[3] == C && wo * C <= (1 << 30)) {
      ptrs[0] = row;
      const int n = int(wo * C);
      if (kt.store_tile(TileStore{v, n, 1, n, ptrs.data(), storage_code(r.dtype), 0})) return;
    }
    for (std::int64_t w = 0; w < wo; ++w) ptrs[std::size_t(w)] = row + w * s[3] * es;
    // (TileStore's counts are ints: a row wider than that goes element-wise)
    if (wo <= (1 << 20) && C <= (1 << 20) &&
        kt.store_tile(TileStore{v, int(C), int(wo), int(C), ptrs.data(), storage_code(r.dtype), 0}))
      return;
  }
  visit_dtype(r.dtype, [&](auto e) {
    using E = decltype(e);
    auto* y = reinterpret_cast<typename E::storage*>(row);
    for (std::int64_t w = 0; w < wo; ++w)
      for (std::int64_t c = 0; c < C; ++c) store_any(y + w * s[3] + c * s[4], E::template store<float>(v[w * C + c]));
  });
}

}  // namespace volconv::cpu
