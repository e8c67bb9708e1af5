// The lane-layout self-check (metal/conv3d_self_check.metal): its inputs and
// the verdict on its output, in plain C++ so the Metal host and the Linux
// emulator tests share them. The kernel is dispatched as one threadgroup of
// one simdgroup (32 threads).
#pragma once

#include <string>

namespace volconv::metal {

constexpr int kSelfCheckThreads = 32;
constexpr int kSelfCheckInputFloats = 64;    // each of input and weight: 8x8 row-major
constexpr int kSelfCheckOutputFloats = 192;  // see metal/conv3d_self_check.metal
inline constexpr const char* kSelfCheckKernel = "volconv_self_check";

// The 8x8 matrices the host uploads: distinct small integers, so every
// element is identifiable and the 8x8 product is exact in float.
void self_check_inputs(float* input, float* weight);

// "" when `output` (kSelfCheckOutputFloats, from the kernel run on
// self_check_inputs) shows the layout the kernels assume and a correct
// product; otherwise the first discrepancy, in words.
std::string self_check_failure(const float* output);

}  // namespace volconv::metal
