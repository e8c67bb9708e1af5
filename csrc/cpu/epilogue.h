// The fused epilogue on the CPU (volconv/epilogue.h): every driver calls it
// on a tile or row of results while they are still in its fp32 (fp64)
// buffer in L1, just before the store that converts them to the output
// dtype, so the output is written once and never read back.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/backend.h"

namespace volconv::cpu {

struct TileRows;

class EpilogueRun {
 public:
  explicit EpilogueRun(const detail::ConvCall& call);
  bool active() const { return active_; }

  // v[j] for channels [chan0, chan0 + n) of the output position whose
  // residual offset (channel 0) is res_off: v = act(v + bias) + residual.
  void apply(float* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off) const;
  void apply(double* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off) const;

  // The valid rows of an fp32 tile c (row stride ldc), flattened output
  // positions rows.m0 + r, channels [chan0, chan0 + nc).
  void apply_tile(float* c, int ldc, const TileRows& rows, std::int64_t chan0, int nc) const;

  // Residual offset (channel 0) of output position (n, od, oh, ow).
  std::int64_t residual_offset(std::int64_t n, std::int64_t od, std::int64_t oh, std::int64_t ow) const {
    return n * rs_[0] + od * rs_[1] + oh * rs_[2] + ow * rs_[3];
  }

 private:
  template <class T> void apply_typed(T* v, std::int64_t n, std::int64_t chan0, std::int64_t res_off,
                                      const std::vector<T>& bias) const;
  bool active_ = false;
  Activation act_ = Activation::none;
  bool avx2_ = false;  // the AVX2 clone of the float32 silu / gelu_tanh
  std::vector<float> bias32_;
  std::vector<double> bias64_;
  const char* res_ = nullptr;  // null: no residual
  DType res_dtype_ = DType::float32;
  Shape5 rs_{};
  Int3 out_{};  // Do, Ho, Wo
};

}  // namespace volconv::cpu
