// The op: 3-D convolution over NDHWC arrays with MLX's conv3d semantics.
#pragma once

#include "volconv/device.h"
#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv {

// output[n, od, oh, ow, co] = sum over (kd, kh, kw, ci) of
//   input[n, od*sd - pd + kd*dd, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw, g*Cg + ci]
//   * weight[co, kd, kh, kw, ci],  g = co / (C_out / groups),
// reading zero where the input index falls in the padding.
//
// input: (N, D, H, W, C_in); weight: (C_out, KD, KH, KW, C_in / groups);
// output: (N, Do, Ho, Wo, C_out) of dtype promote_types(input, weight),
// provided by the caller and not overlapping the inputs. Accumulates in
// float32 (float64 when the output is float64). Errors in the arguments throw
// std::invalid_argument before any work; a backend failure throws
// std::runtime_error; a working buffer that cannot be allocated throws
// volconv::OutOfMemory (volconv/out_of_memory.h), a std::bad_alloc.
void conv3d(const ConstTensorView& input, const ConstTensorView& weight,
            const TensorView& output, const ConvParams& params, const Stream& stream);

// Same, on the default stream of the default device. When that device is
// the GPU by automatic choice (set_default_device never called) and the GPU
// cannot run the kernels (they fail to compile, or its lane-layout
// self-check fails), the call runs on the CPU and warns once per process;
// a GPU stream passed explicitly throws std::runtime_error instead.
void conv3d(const ConstTensorView& input, const ConstTensorView& weight,
            const TensorView& output, const ConvParams& params);

}  // namespace volconv
