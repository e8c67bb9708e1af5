// The weight gradient by output rows (wgrad_rows.cpp): for few input channels
// per group, the GEMM's vectors run over C_out instead of C_in.
#pragma once

#include "../core/conv_problem.h"

namespace volconv::cpu {

// A weight gradient whose input is not dilated along W (dilated rows would
// multiply inserted zeros: those stay on the gathered GEMM), and whose W
// padding, if it reads zeros, may be multiplied (ZeroTaps::multiplied).
bool wgrad_rows_applies(const detail::ConvProblem& problem);
void run_wgrad_rows(const detail::ConvProblem& problem);

}  // namespace volconv::cpu
