// Validation and lowering of conv_general, conv_transpose3d and conv3d's
// gradients onto the internal ConvProblemGeometry: the one place where these
// ops decide what a valid call is (the *_output_shape helpers and the ops
// both call it).
#pragma once

#include <string>

#include "backend.h"
#include "conv_problem.h"
#include "volconv/conv_general.h"

namespace volconv::detail {

struct LoweredGeometry {
  ConvProblemGeometry geometry;
  Shape5 result_shape;  // the shape of what the op writes
};

// op names the function in messages ("[op] ...").
LoweredGeometry lower_conv_general(const char* op, const Shape5& input, const Shape5& weight,
                                   const ConvGeneralParams& p);
LoweredGeometry lower_conv_transpose3d(const char* op, const Shape5& input, const Shape5& weight,
                                       const ConvTransposeParams& p);
// conv3d's input gradient: a data problem over grad_output, weight read in_k_out.
LoweredGeometry lower_conv3d_grad_input(const char* op, const Shape5& grad_output, const Shape5& weight,
                                        const Shape5& input, const ConvParams& p);
// conv3d's weight gradient: the forward geometry (input -> grad_output).
LoweredGeometry lower_conv3d_grad_weight(const char* op, const Shape5& input, const Shape5& grad_output,
                                         const Shape5& weight, const ConvParams& p);
// conv_transpose3d's input gradient: a strided forward conv of grad_output,
// weight read in_k_out.
LoweredGeometry lower_conv_transpose3d_grad_input(const char* op, const Shape5& grad_output,
                                                  const Shape5& weight, const Shape5& input,
                                                  const ConvTransposeParams& p);

// conv3d's validated geometry in the forward direction (input -> output):
// what conv3d's weight gradient lowers to.
ConvProblemGeometry forward_problem_geometry(const ConvGeometry& geometry);
// conv3d's call as a data problem, for a backend that runs problems only
// (csrc/cuda).
ConvProblem forward_problem(const ConvCall& call);

// result_shape of a weight gradient: the weight's shape, after checking that
// `output` has the forward output's shape.
void check_grad_output(const char* op, const Shape5& grad_output, const Shape5& expected);

}  // namespace volconv::detail
