// Compiled (never run) on a machine with cuDNN 9's headers: the
// declarations of csrc/cuda/cudnn_api.h, written without them, must match
// the real ones: every enum value used, the algorithm-result struct's
// layout, and each function's signature (enums as int, cudaStream_t as void*).
//   g++ -std=c++17 -fsyntax-only -I<cudnn>/include -I<cuda>/include tests/cuda/cudnn_api_check.cpp
#include <cudnn.h>

#include <cstddef>
#include <type_traits>

#include "../../csrc/cuda/cudnn_api.h"

namespace ours = volconv::cudnn;

static_assert(CUDNN_STATUS_SUCCESS == ours::kSuccess);
static_assert(CUDNN_DATA_FLOAT == ours::kFloat && CUDNN_DATA_HALF == ours::kHalf &&
              CUDNN_DATA_BFLOAT16 == ours::kBfloat16);
static_assert(CUDNN_TENSOR_NHWC == ours::kNhwc && CUDNN_CROSS_CORRELATION == ours::kCrossCorrelation);
static_assert(CUDNN_TENSOR_OP_MATH == ours::kTensorOpMath && CUDNN_FMA_MATH == ours::kFmaMath);
static_assert(CUDNN_DETERMINISTIC == ours::kDeterministic);

#define SAME_LAYOUT(T)                                                                                       \
  static_assert(sizeof(T) == sizeof(ours::AlgoPerf) && offsetof(T, algo) == offsetof(ours::AlgoPerf, algo) && \
                offsetof(T, status) == offsetof(ours::AlgoPerf, status) &&                                   \
                offsetof(T, time) == offsetof(ours::AlgoPerf, time) &&                                       \
                offsetof(T, memory) == offsetof(ours::AlgoPerf, memory) &&                                   \
                offsetof(T, determinism) == offsetof(ours::AlgoPerf, determinism) &&                         \
                offsetof(T, mathType) == offsetof(ours::AlgoPerf, math_type) &&                              \
                sizeof(((T*)nullptr)->algo) == sizeof(int) && sizeof(((T*)nullptr)->determinism) == sizeof(int))
SAME_LAYOUT(cudnnConvolutionFwdAlgoPerf_t);
SAME_LAYOUT(cudnnConvolutionBwdDataAlgoPerf_t);
SAME_LAYOUT(cudnnConvolutionBwdFilterAlgoPerf_t);

// The real signature with enums as int, the stream as void* and the result
// structs as ours: what cudnn_api.h must declare.
template <class T>
struct Norm {
  using type = std::conditional_t<std::is_enum_v<T>, int, T>;
};
template <>
struct Norm<cudaStream_t> {
  using type = void*;
};
template <>
struct Norm<cudnnConvolutionFwdAlgoPerf_t*> {
  using type = ours::AlgoPerf*;
};
template <>
struct Norm<cudnnConvolutionBwdDataAlgoPerf_t*> {
  using type = ours::AlgoPerf*;
};
template <>
struct Norm<cudnnConvolutionBwdFilterAlgoPerf_t*> {
  using type = ours::AlgoPerf*;
};
template <class F>
struct NormFn;
template <class R, class... A>
struct NormFn<R(A...)> {
  using type = typename Norm<R>::type (*)(typename Norm<A>::type...);
};
#define SAME(name) \
  static_assert(std::is_same_v<NormFn<decltype(::cudnn##name)>::type, decltype(ours::Api::name)>, #name)

SAME(GetVersion);
SAME(GetErrorString);
SAME(Create);
SAME(SetStream);
SAME(CreateTensorDescriptor);
SAME(SetTensorNdDescriptor);
SAME(DestroyTensorDescriptor);
SAME(CreateFilterDescriptor);
SAME(SetFilterNdDescriptor);
SAME(DestroyFilterDescriptor);
SAME(CreateConvolutionDescriptor);
SAME(SetConvolutionNdDescriptor);
SAME(SetConvolutionGroupCount);
SAME(SetConvolutionMathType);
SAME(DestroyConvolutionDescriptor);
SAME(GetConvolutionForwardAlgorithm_v7);
SAME(GetConvolutionBackwardDataAlgorithm_v7);
SAME(GetConvolutionBackwardFilterAlgorithm_v7);
SAME(GetConvolutionForwardWorkspaceSize);
SAME(GetConvolutionBackwardDataWorkspaceSize);
SAME(GetConvolutionBackwardFilterWorkspaceSize);
SAME(FindConvolutionForwardAlgorithmEx);
SAME(FindConvolutionBackwardDataAlgorithmEx);
SAME(FindConvolutionBackwardFilterAlgorithmEx);
SAME(ConvolutionForward);
SAME(ConvolutionBackwardData);
SAME(ConvolutionBackwardFilter);
SAME(TransformTensor);

int main() { return 0; }
