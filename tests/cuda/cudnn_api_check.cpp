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
static_assert(std::is_same_v<cudnnBackendDescriptor_t, ours::BackendDesc>);
static_assert(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR == ours::kBackendConvolution &&
              CUDNN_BACKEND_ENGINE_DESCRIPTOR == ours::kBackendEngine &&
              CUDNN_BACKEND_ENGINECFG_DESCRIPTOR == ours::kBackendEngineCfg &&
              CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR == ours::kBackendEngineHeur &&
              CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR == ours::kBackendExecutionPlan &&
              CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR == ours::kBackendOpConvForward &&
              CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR == ours::kBackendOpConvBackwardFilter &&
              CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR == ours::kBackendOpConvBackwardData &&
              CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR == ours::kBackendOperationGraph &&
              CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR == ours::kBackendVariantPack &&
              CUDNN_BACKEND_TENSOR_DESCRIPTOR == ours::kBackendTensor);
static_assert(CUDNN_TYPE_HANDLE == ours::kTypeHandle && CUDNN_TYPE_DATA_TYPE == ours::kTypeDataType &&
              CUDNN_TYPE_INT64 == ours::kTypeInt64 && CUDNN_TYPE_FLOAT == ours::kTypeFloat &&
              CUDNN_TYPE_VOID_PTR == ours::kTypeVoidPtr && CUDNN_TYPE_CONVOLUTION_MODE == ours::kTypeConvolutionMode &&
              CUDNN_TYPE_HEUR_MODE == ours::kTypeHeurMode && CUDNN_TYPE_NUMERICAL_NOTE == ours::kTypeNumericalNote &&
              CUDNN_TYPE_BACKEND_DESCRIPTOR == ours::kTypeBackendDescriptor);
static_assert(CUDNN_ATTR_CONVOLUTION_COMP_TYPE == ours::kAttrConvCompType &&
              CUDNN_ATTR_CONVOLUTION_CONV_MODE == ours::kAttrConvMode &&
              CUDNN_ATTR_CONVOLUTION_DILATIONS == ours::kAttrConvDilations &&
              CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES == ours::kAttrConvFilterStrides &&
              CUDNN_ATTR_CONVOLUTION_POST_PADDINGS == ours::kAttrConvPostPaddings &&
              CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS == ours::kAttrConvPrePaddings &&
              CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS == ours::kAttrConvSpatialDims);
static_assert(CUDNN_ATTR_ENGINEHEUR_MODE == ours::kAttrEngineHeurMode &&
              CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH == ours::kAttrEngineHeurOperationGraph &&
              CUDNN_ATTR_ENGINEHEUR_RESULTS == ours::kAttrEngineHeurResults &&
              CUDNN_ATTR_ENGINECFG_ENGINE == ours::kAttrEngineCfgEngine &&
              CUDNN_ATTR_EXECUTION_PLAN_HANDLE == ours::kAttrExecutionPlanHandle &&
              CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG == ours::kAttrExecutionPlanEngineConfig &&
              CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE == ours::kAttrExecutionPlanWorkspaceSize);
static_assert(CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA == ours::kAttrConvForwardAlpha &&
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y == ours::kAttrConvForwardAlpha + 5 &&
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA == ours::kAttrConvBackwardDataAlpha &&
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY == ours::kAttrConvBackwardDataAlpha + 5 &&
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA == ours::kAttrConvBackwardFilterAlpha &&
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY == ours::kAttrConvBackwardFilterAlpha + 5);
static_assert(CUDNN_ATTR_OPERATIONGRAPH_HANDLE == ours::kAttrOperationGraphHandle &&
              CUDNN_ATTR_OPERATIONGRAPH_OPS == ours::kAttrOperationGraphOps &&
              CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT == ours::kAttrTensorByteAlignment &&
              CUDNN_ATTR_TENSOR_DATA_TYPE == ours::kAttrTensorDataType &&
              CUDNN_ATTR_TENSOR_DIMENSIONS == ours::kAttrTensorDimensions &&
              CUDNN_ATTR_TENSOR_STRIDES == ours::kAttrTensorStrides &&
              CUDNN_ATTR_TENSOR_UNIQUE_ID == ours::kAttrTensorUniqueId &&
              CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS == ours::kAttrVariantPackUniqueIds &&
              CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS == ours::kAttrVariantPackDataPointers &&
              CUDNN_ATTR_VARIANT_PACK_WORKSPACE == ours::kAttrVariantPackWorkspace &&
              CUDNN_ATTR_ENGINE_NUMERICAL_NOTE == ours::kAttrEngineNumericalNote);
static_assert(CUDNN_HEUR_MODE_INSTANT == ours::kHeurInstant && CUDNN_HEUR_MODE_FALLBACK == ours::kHeurFallback);
static_assert(CUDNN_NUMERICAL_NOTE_TENSOR_CORE == ours::kNoteTensorCore &&
              CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS == ours::kNoteDownConvertInputs &&
              CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION == ours::kNoteReducedPrecisionReduction &&
              CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC == ours::kNoteNondeterministic &&
              CUDNN_NUMERICAL_NOTE_TYPE_COUNT <= ours::kNoteTypeCount);

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
SAME(BackendCreateDescriptor);
SAME(BackendDestroyDescriptor);
SAME(BackendFinalize);
SAME(BackendSetAttribute);
SAME(BackendGetAttribute);
SAME(BackendExecute);

int main() { return 0; }
