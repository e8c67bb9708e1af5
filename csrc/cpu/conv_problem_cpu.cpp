// The CPU entry for a general convolution problem: one driver per op.
#include <cstring>

#include "conv_problem_cpu.h"

namespace volconv::cpu {

void run_problem(const detail::ConvProblem& problem) {
  if (problem.op == detail::ConvOp::data) {
    run_data_problem(problem);
    if (problem.fold.active()) fold_padding(problem);
  } else
    run_weight_grad(problem);
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
