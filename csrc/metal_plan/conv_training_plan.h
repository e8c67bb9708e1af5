// The GPU planner of the training ops: a pure function from one ConvProblem
// geometry (csrc/core/conv_problem.h) to the Metal dispatches that compute it,
// in order. Data problems (conv_transpose3d, the input gradients,
// conv_general) get one dispatch per stride phase; a weight gradient gets its
// partial sums and then the reduction; conv3d's input gradient under a padding
// mode also gets, per box of the padded shell, the box's phases and its fold. The Metal host encodes exactly these
// dispatches; the MSL emulator runs exactly these (tests/emulator).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/conv_problem.h"
#include "../core/padding_shell.h"
#include "conv3d_plan.h"  // DeviceLimits, Size3, PipelineFacts, LibraryUnit
#include "conv_training_params.h"  // metal/: the params struct the kernels read
#include "volconv/dtype.h"

namespace volconv::metal_plan {

enum class TrainingFamily { phase_gemm, phase_depthwise, wgrad_gemm, wgrad_depthwise, wgrad_reduce, padding_fold };
const char* family_name(TrainingFamily family);

// What a dispatch binds at [[buffer(0)]], [[buffer(1)]], [[buffer(2)]]; the
// params go to [[buffer(3)]] (setBytes), threadgroup memory to index 0.
//  phase_*:  input (N, in..., C_in), weight (stored), result (N, out..., C_out)
//  wgrad_gemm / wgrad_depthwise: input, output (grad_output), partials
//  wgrad_reduce: partials, partials, result (the weight gradient)
//  a box's phase_*: input, weight, scratch (the box's gradient, N x box x C)
//  padding_fold: scratch, scratch, result
// All C-contiguous, of the plan's dtype, except partials: float32, of
// partials_bytes, which the host allocates for the call. The scratch (of
// scratch_bytes, the plan's dtype) is allocated by the host too; the boxes
// reuse it one after another.
enum class TrainingBuffer { input, weight, output, partials, result, scratch };
const char* buffer_name(TrainingBuffer buffer);

struct TrainingDispatch {
  std::string kernel_name;  // exactly the [[host_name]] in metal/conv_training_*.metal
  TrainingFamily family = TrainingFamily::phase_gemm;
  std::string template_args;  // for logs
  TrainingBuffer buffers[3] = {TrainingBuffer::input, TrainingBuffer::weight, TrainingBuffer::result};
  int bm = 0, bn = 0, bk = 0, wm = 0, wn = 0;  // GEMM tile (0 for the untiled kernels)
  Size3 threadgroup;                            // threads per threadgroup
  Size3 grid;                                   // threadgroups per grid
  std::uint64_t threadgroup_memory_bytes = 0;   // a multiple of 16, at least 16
  ConvTrainParams params{};  // at [[buffer(3)]] for every family but padding_fold
  PaddingFoldParams fold{};  // at [[buffer(3)]] for padding_fold
};

// One box of the padded shell of conv3d's input gradient (core/padding_shell.h).
using FoldBox = detail::PaddingShellBox;

struct TrainingPlan {
  DType dtype = DType::float32;
  int index_bits = 32;  // 64: the "_large" kernels (some offset passes 2^31 - 1)
  int parts = 0;        // weight gradient: partial sums (fixed by the problem, not the grid)
  std::uint64_t partials_bytes = 0;  // float32 scratch the dispatches share (0: none)
  std::uint64_t scratch_bytes = 0;   // the largest fold box, in the plan's dtype (0: none)
  std::vector<FoldBox> fold_boxes;   // in the order their dispatches run
  std::vector<TrainingDispatch> dispatches;  // encoded in this order on one queue
};

// Choices the planner would not make by itself (tests force every plan).
struct TrainingPlanOptions {
  bool force_64bit_index = false;
  int force_family = -1;  // 0: the GEMM kernel, 1: the depthwise one (refused where it cannot run)
  int force_tile = -1;    // index into the GEMM family's tile list
};

// A data problem (op == data). `op` names the user's op in messages
// ("[conv_transpose3d] ..."). Throws std::invalid_argument for what the GPU
// kernels cannot run (float64, sizes past their 32-bit fields, limits).
TrainingPlan plan_data_problem(const char* op, const detail::ConvProblemGeometry& geometry,
                               detail::WeightLayout layout, DType dtype, const DeviceLimits& limits = {},
                               const TrainingPlanOptions& options = {});

// A weight gradient (op == weight_grad), result in the stored layout out_k_in;
// zero_taps says whether the padding's products are multiplied (conv3d's) or
// left out (conv_general's, a transposed conv's).
TrainingPlan plan_weight_grad(const char* op, const detail::ConvProblemGeometry& geometry, DType dtype,
                              const DeviceLimits& limits = {}, const TrainingPlanOptions& options = {},
                              detail::ZeroTaps zero_taps = detail::ZeroTaps::multiplied);

// The plan of a validated problem in `dtype`: plan_weight_grad or
// plan_data_problem. conv3d's input gradient under a padding mode
// (problem.fold): the data problem's dispatches (the unpadded positions, as
// zero padding), then per shell box the same problem cropped to the box into
// the scratch, and the box's padding_fold (the GPU form of
// csrc/cpu/padding_fold.cpp).
TrainingPlan plan_problem(const char* op, const detail::ConvProblem& problem, DType dtype,
                          const DeviceLimits& limits = {}, const TrainingPlanOptions& options = {});

// How many partial sums a weight gradient of `positions` output positions
// and `weight_elements` weights takes: a function of the problem only.
int weight_grad_parts(std::int64_t positions, std::int64_t weight_elements);

// The number of GEMM tiles of each tiled family (for forcing).
int tile_count(TrainingFamily family);

std::string describe(const TrainingDispatch& dispatch);
std::uint64_t threadgroup_memory_length(const TrainingDispatch& dispatch);
// As check_pipeline for conv3d: throws std::runtime_error when the pipeline
// cannot run the dispatch.
void check_pipeline(const TrainingDispatch& dispatch, const PipelineFacts& facts);

// Every kernel name the training planner can return.
std::vector<std::string> plannable_training_kernel_names();

// The library unit holding `family` for `dtype` (compiled on first use).
LibraryUnit library_unit(TrainingFamily family, DType dtype);

}  // namespace volconv::metal_plan
