// The CPU drivers of the general convolution (see csrc/core/conv_problem.h).
#pragma once

#include "../core/conv_problem.h"

namespace volconv::cpu {

// A data problem (forward, transposed, input gradient), split by stride phase
// into forward convolutions run by conv3d's paths: no inserted zero is read.
void run_data_problem(const detail::ConvProblem& problem);

// conv3d's input gradient with a padding mode (problem.fold active): adds
// each padded position's gradient to the input element it read.
void fold_padding(const detail::ConvProblem& problem);

// A weight gradient: a GEMM over output positions in kWeightGradParts fixed
// partial sums, reduced in order (bit-identical for any thread count).
void run_weight_grad(const detail::ConvProblem& problem);

// Fixed number of partial sums of the weight gradient: extra memory
// kWeightGradParts x weight elements x 4 bytes (8 for float64).
constexpr std::int64_t kWeightGradParts = 8;

// Writes zeros to every element of a strided view.
void fill_zero(const TensorView& view);

}  // namespace volconv::cpu
