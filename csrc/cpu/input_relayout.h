// Inputs whose channels are not contiguous (a PyTorch NCDHW tensor permuted
// to NDHWC: channels outermost in memory) would send every path to gathers
// of one element at a time. They are copied once, by a cache-blocked
// transpose, into a contiguous NDHWC workspace, so the call then runs
// exactly as on a contiguous input (bit-identical results).
#pragma once

#include <cstdint>
#include <memory>

#include "volconv/tensor.h"

namespace volconv::cpu {

// True when the input's channels are strided (more than one channel and a
// channel stride other than 1): such a call is relaid out first.
bool needs_channel_relayout(const ConstTensorView& input);

// Copies input (any strides) into a new buf as contiguous NDHWC, element
// bits unchanged, and returns the contiguous view of buf (a failed
// allocation throws OutOfMemory naming "the relaid-out input").
ConstTensorView relayout_channels_last(const ConstTensorView& input, std::unique_ptr<unsigned char[]>& buf);

namespace testing {
// How many inputs were relaid out so far (test-only: checks the copy runs).
std::int64_t relayout_count();
}  // namespace testing

}  // namespace volconv::cpu
