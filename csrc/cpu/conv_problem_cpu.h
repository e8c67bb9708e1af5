// The CPU drivers of the general convolution (see csrc/core/conv_problem.h).
#pragma once

#include <vector>

#include "../core/backend.h"
#include "../core/conv_problem.h"

namespace volconv::cpu {

// conv3d's input gradient with a padding mode (problem.fold active): adds
// each padded position's gradient to the input element it read.
void fold_padding(const detail::ConvProblem& problem);

// A weight gradient: a GEMM over output positions in kWeightGradParts fixed
// partial sums, reduced in order (bit-identical for any thread count).
void run_weight_grad(const detail::ConvProblem& problem);

// Fixed number of partial sums of the weight gradient: extra memory
// kWeightGradParts x weight elements x 4 bytes (8 for float64).
constexpr std::int64_t kWeightGradParts = 8;

// One phase along one dimension.
struct DimPhase {
  std::int64_t first = 0, count = 0;         // outputs first, first + P, ...: count of them
  bool zero = false;                         // no tap reads the input: the outputs are zeros
  std::int64_t tap0 = 0, tap_step = 1, taps = 0;  // logical taps tap0 + tap_step * t, t < taps
  std::int64_t in_begin = 0, in_len = 0;     // the input slice the sub-conv reads
  std::int64_t pad_lo = 0, pad_hi = 0, stride = 1, dilation = 1;
};

// Phase r of P along dimension i (0 D, 1 H, 2 W): out[o] reads dilated index
// j = o*st - lo + k*kdil, real only when j % idil == 0. For o = r + P*q
// (P = idil / gcd(st, idil)) the real taps are k0, k0 + T, ...
// (T = idil / gcd(kdil, idil)), and their input index is
// b + q*(st / gcd(st, idil)) + t*(kdil / gcd(kdil, idil)).
DimPhase plan_dim(const detail::ConvProblemGeometry& g, int i, std::int64_t r, std::int64_t P);
// The number of phases P along dimension i: idil / gcd(st, idil).
std::int64_t phase_period(const detail::ConvProblemGeometry& g, int i);

// One forward conv of a data problem: the phase (r[0], r[1], r[2]), or with
// merge > 1 the W phases r[2] .. r[2] + merge - 1 stacked along C_out (they
// read the same input slice the same way); work: its multiply-adds.
struct PhaseJob {
  std::int64_t r[3];
  std::int64_t merge;
  DimPhase ph[3];  // ph[2]: the first W phase when merged
  double work;
};
std::vector<PhaseJob> list_phases(const detail::ConvProblem& problem);

// Whether the jobs run all at once, each on one thread, rather than one
// after another each split over the threads (conv_phases.cpp says when).
bool phases_concurrent(const std::vector<PhaseJob>& jobs, int threads);

// A data problem (forward, transposed, input gradient), split by stride phase
// into forward convolutions run by conv3d's paths: no inserted zero is read.
void run_data_problem(const detail::ConvProblem& problem, bool concurrent);

// conv3d's planned kernels without its NaN pass (nonfinite_weights.h): for
// callers whose weights are finite.
void conv3d_kernels(const detail::ConvCall& call, const PrepackedWeights* prepacked = nullptr);

// Writes zeros to every element of a strided view.
void fill_zero(const TensorView& view);

}  // namespace volconv::cpu
