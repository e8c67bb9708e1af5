// The CPU entry for a general convolution problem: the plan's driver.
#include <cstring>

#include "conv3d_plan.h"
#include "conv_problem_cpu.h"
#include "cpu_features.h"
#include "dw_backward.h"
#include "nonfinite_grad_output.h"
#include "nonfinite_scatter.h"
#include "wgrad_rows.h"
#include "volconv/cpu.h"

namespace volconv::cpu {

void run_problem(const detail::ConvProblem& problem) {
  const KernelTable& kt = active_kernels();  // once: a concurrent force_isa must not split plan and run
  const ProblemPlan plan = plan_problem(problem, kt, get_num_threads());
  switch (plan.path) {
    case ProblemPath::phases: run_data_problem(problem, plan.concurrent); break;
    case ProblemPath::dw_data:
      run_dw_data(problem, kt, plan.h_block, plan.channel_block);
      // dw-data skips the padding; a forward conv (conv_transpose3d's input
      // gradient) multiplies it, as torch does: 0 * NaN = NaN.
      if (problem.zero_taps == detail::ZeroTaps::multiplied) propagate_nonfinite_weights(problem);
      break;
    case ProblemPath::gemm_wgrad: run_weight_grad(problem); break;
    case ProblemPath::dw_weight_grad: run_dw_weight_grad(problem, plan.channel_block); break;
    case ProblemPath::rows_wgrad: run_wgrad_rows(problem); break;
  }
  // Every weight-gradient driver skips the padding, where conv3d's weight
  // gradient multiplies zeros by grad_output (0 * NaN = NaN), as torch does.
  if (problem.op == detail::ConvOp::weight_grad) propagate_nonfinite_grad_output(problem);
  // conv3d's input gradient with a padding mode: the padded positions'
  // gradients go back to the elements they read (padding_fold.cpp).
  if (problem.op == detail::ConvOp::data && problem.fold.active()) fold_padding(problem);
}

void fill_zero(const TensorView& v) {
  const std::int64_t es = std::int64_t(dtype_size(v.dtype));
  char* base = static_cast<char*>(v.data);
  for (std::int64_t a = 0; a < v.shape[0]; ++a)
    for (std::int64_t b = 0; b < v.shape[1]; ++b)
      for (std::int64_t c = 0; c < v.shape[2]; ++c)
        for (std::int64_t d = 0; d < v.shape[3]; ++d) {
          char* row = base + (a * v.strides[0] + b * v.strides[1] + c * v.strides[2] + d * v.strides[3]) * es;
          if (v.strides[4] == 1) {
            std::memset(row, 0, std::size_t(v.shape[4] * es));
          } else {
            for (std::int64_t e = 0; e < v.shape[4]; ++e) std::memset(row + e * v.strides[4] * es, 0, std::size_t(es));
          }
        }
}

}  // namespace volconv::cpu
