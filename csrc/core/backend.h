// What csrc/core hands a backend: a validated call. Each backend implements
// its functions in its own folder; a build without Metal links
// csrc/metal/no_metal.cpp instead of the host.
#pragma once

#include <string>

#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv::detail {

// A call that passed validation: shapes match the geometry, the output dtype
// is the promotion of the inputs' and the output overlaps neither input.
struct ConvCall {
  const ConvGeometry& geometry;
  ConstTensorView input;
  ConstTensorView weight;
  TensorView output;
};

}  // namespace volconv::detail

namespace volconv::cpu {
struct PrepackedWeights;  // cpu/prepacked_weights.h
// prepacked: weights packed ahead (volconv/packed_weights.h), or nullptr.
void conv3d(const detail::ConvCall& call, const PrepackedWeights* prepacked = nullptr);
}

namespace volconv::metal {
// Failures that mean the GPU cannot run the kernels at all throw
// detail::GpuUnusable (core/gpu_fallback.h); everything else throws as usual.
// "" when a Metal device with the GPU family the kernels need exists.
std::string unavailable_reason();
// A new command queue; returns its id.
int new_queue();
// Encodes the call on `queue` and waits for it to finish.
void conv3d(const detail::ConvCall& call, int queue);
void synchronize(int queue);
// The CPU address of a shared-storage MTLBuffer's contents; nullptr for
// private storage, and always in a build without Metal.
void* buffer_contents(const void* metal_buffer);
}  // namespace volconv::metal
