// The parameters of one dispatch of the training kernels (the input-dilated
// data problems of conv_training_phase.metal and the weight gradient of
// conv_training_wgrad.metal), shared verbatim by the planner
// (csrc/metal_plan/conv_training_plan.cpp) and the kernels, as
// conv3d_params.h is for the forward ones. 64-bit members first, so the
// layout is the same under both compilers (static_assert in the planner).
#pragma once

#include "conv3d_params.h"

// Tiles of the phase GEMM (data problems) and of the weight-gradient GEMM, as
// X(T, BM, BN, BK, WM, WN, IDX); the planner reads the same lists.
#define VOLCONV_PHASE_TILES(X, T, IDX) \
  X(T, 64, 32, 16, 2, 2, IDX)          \
  X(T, 32, 16, 16, 2, 2, IDX)
// Weight gradient: BM output channels x BN (tap, input channel) columns.
#define VOLCONV_WGRAD_TILES(X, T, IDX) \
  X(T, 32, 32, 16, 2, 2, IDX)          \
  X(T, 16, 64, 16, 2, 2, IDX)

#define VOLCONV_TRAINING_EACH_INDEX(TILES, X, T) TILES(X, T, idx32) TILES(X, T, idx64)
#define VOLCONV_PHASE_GEMM_KERNELS(X, T) VOLCONV_TRAINING_EACH_INDEX(VOLCONV_PHASE_TILES, X, T)
#define VOLCONV_WGRAD_GEMM_KERNELS(X, T) VOLCONV_TRAINING_EACH_INDEX(VOLCONV_WGRAD_TILES, X, T)
#define VOLCONV_TRAINING_UNTILED(X, T, IDX) X(T, IDX)
#define VOLCONV_TRAINING_UNTILED_KERNELS(X, T) VOLCONV_TRAINING_EACH_INDEX(VOLCONV_TRAINING_UNTILED, X, T)

// Host names: "convtrain_<family>_<type>[_<tile>][_large]". A prefix of their
// own keeps them apart from conv3d's kernels (and the checks on those).
#define VOLCONV_TRAINING_TILE_KERNEL_NAME(FAMILY, T, BM, BN, BK, WM, WN, IDX) \
  "convtrain_" #FAMILY "_" #T "_" #BM "x" #BN "x" #BK "_" #WM "x" #WN VOLCONV_INDEX_SUFFIX(IDX)
#define VOLCONV_TRAINING_KERNEL_NAME(FAMILY, T, IDX) "convtrain_" #FAMILY "_" #T VOLCONV_INDEX_SUFFIX(IDX)

// Library units (VOLCONV_LIBRARY_HAS in conv3d_params.h), after conv3d's.
#define VOLCONV_FAMILY_phase_gemm 6
#define VOLCONV_FAMILY_phase_depthwise 7
#define VOLCONV_FAMILY_wgrad_gemm 8
#define VOLCONV_FAMILY_wgrad_depthwise 9
#define VOLCONV_FAMILY_wgrad_reduce 10
#define VOLCONV_FAMILY_padding_fold 11

namespace volconv {

// The untiled kernels' threadgroups: 32 channels x 4 rows of threads.
struct TrainingTile {
  VOLCONV_CONST int THREADS = 128;
  VOLCONV_CONST int CHANNELS = 32;
  VOLCONV_CONST int ROWS_PER_THREAD = 4;     // phase depthwise: output rows per thread
  VOLCONV_CONST int REDUCE_THREADS = 256;    // wgrad_reduce: one weight element per thread
  VOLCONV_CONST int MAX_PARTS = 16;          // partial sums of the weight gradient, at most
  VOLCONV_CONST int FOLD_THREADS = 256;      // padding_fold: one result element per thread
};

struct ConvTrainParams {
  // Rows of this dispatch: a data phase's output positions (N x row_count);
  // for the weight gradient the output positions N * Do * Ho * Wo (its K).
  int64_t gemm_m;
  int64_t rows_dhw;  // row_count[0] * [1] * [2] (weight gradient: Do * Ho * Wo)
  int64_t rows_hw;   // row_count[1] * [2]      (weight gradient: Ho * Wo)
  int64_t in_stride_n, in_stride_d, in_stride_h;     // the (N, in..., C_in) tensor, contiguous
  int64_t out_stride_n, out_stride_d, out_stride_h;  // the (N, out..., C_out) tensor, contiguous
  int64_t weight_elements;  // C_out * taps * C_in_g: one weight, one partial sum
  int64_t part_len;         // weight gradient: output positions per partial sum

  int32_t batch;
  int32_t in_size[3];
  int32_t out_size[3];
  int32_t k_size[3];
  int32_t c_in, c_out, groups, c_in_g, c_out_g;
  int32_t taps;  // KD * KH * KW of the stored weight
  int32_t stride[3], pad_lo[3], kernel_dilation[3], input_dilation[3];
  int32_t flip;            // the logical tap k reads stored tap K - 1 - k
  int32_t weight_in_k_out;  // stored (C_in, K..., C_out / groups) (WeightLayout::in_k_out)
  // One stride phase of a data problem, per dimension: its outputs are
  // out_first + out_step * q (q < row_count); logical taps tap0 + tap_step * t
  // (t < phase_taps) are the only ones landing on real input elements, at input
  // index in_base + q * in_step + t * tap_in_step (outside [0, in_size): padding).
  int32_t row_count[3], out_first[3], out_step[3];
  int32_t in_base[3], in_step[3], tap_in_step[3];
  int32_t tap0[3], tap_step[3], phase_taps[3];
  // Data: phase_taps product * C_in_g, the phase GEMM's K (0: the phase is
  // zeros). Weight gradient: taps * C_in_g, its GEMM's N (a weight row).
  int32_t phase_k;
  int32_t parts;    // weight gradient: partial sums
  // Weight gradient: what the forward padding held per axis (PadModeCode),
  // read through padded_source as the forward kernels do. Zeros for data
  // problems (their planner refuses the rest).
  int32_t pad_mode[3];
  // Weight gradient under ZeroTaps::multiplied (conv3d's, input dilation 1):
  // 1 where a zero-padding read is multiplied (0 * NaN = NaN reaches the sum,
  // as torch), 0 where it is left out (the skip rule). Also keeps the size a
  // multiple of 8 under both compilers.
  int32_t multiply_zeros;
};

// One dispatch of convtrain_padding_fold (conv_training_fold.metal): adds a
// box of padded positions' gradients (the box, computed by the box's phase
// dispatches into the scratch buffer) into the input gradient, through the
// padding mode's index map. The planner's box list says which boxes exist.
struct PaddingFoldParams {
  int64_t count;  // threads that do work: batch * target_len product * channels
  int64_t result_stride_n, result_stride_d, result_stride_h;  // (N, size..., C), contiguous
  int64_t box_stride_n, box_stride_d, box_stride_h;           // (N, box_len..., C), contiguous
  int32_t batch, channels;
  int32_t size[3];          // the result's spatial size (the forward input's)
  int32_t mode[3];          // PadModeCode per axis (the forward padding)
  int32_t box_begin[3];     // the padded coordinate of the box's first position (< 0: low side)
  int32_t box_len[3];
  int32_t target_begin[3];  // the result positions the box reads, per axis: a range that
  int32_t target_len[3];    // holds every image of the box's coordinates
};

}  // namespace volconv
