// Weights packed once for many conv3d calls (an inference loop calling the
// same layer again and again): the caller owns the handle, which holds a
// copy of the weights taken at packing time and the micro-kernels' packed
// panels; nothing is cached behind the caller's back. Results are
// bit-identical to conv3d with the plain weight. CPU only.
#pragma once

#include <memory>
#include <string>

#include "volconv/device.h"
#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv {

namespace detail {
struct PackedConv3dState;
}

class PackedConv3dWeights {
 public:
  PackedConv3dWeights() = default;  // empty: conv3d refuses it
  bool empty() const { return !state_; }
  // What the weights were packed for; a conv3d call must match all of it.
  const Shape5& weight_shape() const;
  DType weight_dtype() const;
  DType input_dtype() const;
  const ConvParams& params() const;  // stride, padding, dilation, groups, padding modes (no epilogue)
  const std::string& isa() const;    // the CPU kernel set active when packing (volconv::cpu::active_isa())
  // The copy of the weights (contiguous), valid while the handle lives.
  ConstTensorView weight() const;
  // Bytes of packed panels held (0 where the call's path packs nothing
  // worth keeping: float64, depthwise and one-input-channel paths).
  std::size_t packed_bytes() const;

  explicit PackedConv3dWeights(std::shared_ptr<const detail::PackedConv3dState> state) : state_(std::move(state)) {}
  const detail::PackedConv3dState* state() const { return state_.get(); }

 private:
  std::shared_ptr<const detail::PackedConv3dState> state_;
};

// Packs weight (C_out, KD, KH, KW, C_in / groups) for conv3d calls with
// inputs of dtype input_dtype and these params (their epilogue is ignored:
// each call brings its own). The input's N, D, H, W may vary between calls.
// Bad arguments throw std::invalid_argument "[pack_conv3d_weights] ...".
PackedConv3dWeights pack_conv3d_weights(const ConstTensorView& weight, DType input_dtype, const ConvParams& params);

// conv3d with packed weights, on the CPU (the stream, when given, must be a
// CPU stream). A call whose params (other than the epilogue), input dtype or
// active CPU kernel set differ from the packing's throws
// std::invalid_argument "[conv3d] ...", as do the checks of conv3d itself.
void conv3d(const ConstTensorView& input, const PackedConv3dWeights& weight, const TensorView& output,
            const ConvParams& params, const Stream& stream);
void conv3d(const ConstTensorView& input, const PackedConv3dWeights& weight, const TensorView& output,
            const ConvParams& params);

}  // namespace volconv
