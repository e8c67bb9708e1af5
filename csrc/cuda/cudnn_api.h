// The part of cuDNN 9's C API the CUDA backend calls, declared here so the
// build needs no cuDNN headers: the library is opened at run time
// (cudnn_loader.h). Values and signatures follow cuDNN 9's cudnn_graph.h /
// cudnn_ops.h / cudnn_cnn.h; tests/cuda_cudnn_api_check.cpp compares them with
// the real headers on a machine that has them. Enum parameters are passed
// as int (the same in the C calling convention).
#pragma once

#include <cstddef>
#include <cstdint>

struct cudnnContext;
struct cudnnTensorStruct;
struct cudnnFilterStruct;
struct cudnnConvolutionStruct;

namespace volconv::cudnn {

using Handle = cudnnContext*;
using TensorDesc = cudnnTensorStruct*;
using FilterDesc = cudnnFilterStruct*;
using ConvDesc = cudnnConvolutionStruct*;
using Status = int;
using Stream = void*;  // cudaStream_t

constexpr Status kSuccess = 0;
// cudnnDataType_t
constexpr int kFloat = 0, kHalf = 2, kBfloat16 = 9;
// cudnnTensorFormat_t
constexpr int kNhwc = 1;
// cudnnConvolutionMode_t
constexpr int kCrossCorrelation = 1;
// cudnnMathType_t: FMA keeps float32 in float32 (no TF32).
constexpr int kTensorOpMath = 1, kFmaMath = 3;
// cudnnDeterminism_t
constexpr int kDeterministic = 1;

// The graph (backend) API: cudnnBackendDescriptor_t is a void*.
using BackendDesc = void*;
// cudnnBackendDescriptorType_t
constexpr int kBackendConvolution = 1, kBackendEngine = 2, kBackendEngineCfg = 3, kBackendEngineHeur = 4,
              kBackendExecutionPlan = 5, kBackendOpConvForward = 10, kBackendOpConvBackwardFilter = 11,
              kBackendOpConvBackwardData = 12, kBackendOperationGraph = 15, kBackendVariantPack = 16,
              kBackendTensor = 17;
// cudnnBackendAttributeType_t
constexpr int kTypeHandle = 0, kTypeDataType = 1, kTypeInt64 = 3, kTypeFloat = 4, kTypeVoidPtr = 6,
              kTypeConvolutionMode = 7, kTypeHeurMode = 8, kTypeNumericalNote = 11, kTypeBackendDescriptor = 15;
// cudnnBackendAttributeName_t
constexpr int kAttrConvCompType = 100, kAttrConvMode = 101, kAttrConvDilations = 102, kAttrConvFilterStrides = 103,
              kAttrConvPostPaddings = 104, kAttrConvPrePaddings = 105, kAttrConvSpatialDims = 106;
constexpr int kAttrEngineHeurMode = 200, kAttrEngineHeurOperationGraph = 201, kAttrEngineHeurResults = 202;
constexpr int kAttrEngineCfgEngine = 300;
constexpr int kAttrExecutionPlanHandle = 400, kAttrExecutionPlanEngineConfig = 401,
              kAttrExecutionPlanWorkspaceSize = 402;
// Forward: alpha, beta, conv, w, x, y; backward data: alpha, beta, conv,
// w, dx, dy; backward filter: alpha, beta, conv, dw, x, dy.
constexpr int kAttrConvForwardAlpha = 700, kAttrConvBackwardDataAlpha = 706, kAttrConvBackwardFilterAlpha = 712;
constexpr int kAttrOperationGraphHandle = 800, kAttrOperationGraphOps = 801;
constexpr int kAttrTensorByteAlignment = 900, kAttrTensorDataType = 901, kAttrTensorDimensions = 902,
              kAttrTensorStrides = 903, kAttrTensorUniqueId = 906;
constexpr int kAttrVariantPackUniqueIds = 1000, kAttrVariantPackDataPointers = 1001, kAttrVariantPackWorkspace = 1003;
constexpr int kAttrEngineNumericalNote = 1303;
// cudnnBackendHeurMode_t
constexpr int kHeurInstant = 0, kHeurFallback = 2;
// cudnnBackendNumericalNote_t
constexpr int kNoteTensorCore = 0, kNoteDownConvertInputs = 1, kNoteReducedPrecisionReduction = 2,
              kNoteNondeterministic = 4, kNoteTypeCount = 10;

// cudnnConvolution{Fwd,BwdData,BwdFilter}AlgoPerf_t share this layout.
struct AlgoPerf {
  int algo;
  Status status;
  float time;
  std::size_t memory;
  int determinism;
  int math_type;
  int reserved[3];
};

struct Api {
  std::size_t (*GetVersion)();
  const char* (*GetErrorString)(Status);
  Status (*Create)(Handle*);
  Status (*SetStream)(Handle, Stream);
  Status (*CreateTensorDescriptor)(TensorDesc*);
  Status (*SetTensorNdDescriptor)(TensorDesc, int dtype, int nb_dims, const int* dims, const int* strides);
  Status (*DestroyTensorDescriptor)(TensorDesc);
  Status (*CreateFilterDescriptor)(FilterDesc*);
  Status (*SetFilterNdDescriptor)(FilterDesc, int dtype, int format, int nb_dims, const int* dims);
  Status (*DestroyFilterDescriptor)(FilterDesc);
  Status (*CreateConvolutionDescriptor)(ConvDesc*);
  Status (*SetConvolutionNdDescriptor)(ConvDesc, int length, const int* pad, const int* stride, const int* dilation,
                                       int mode, int compute_type);
  Status (*SetConvolutionGroupCount)(ConvDesc, int groups);
  Status (*SetConvolutionMathType)(ConvDesc, int math_type);
  Status (*DestroyConvolutionDescriptor)(ConvDesc);
  Status (*GetConvolutionForwardAlgorithm_v7)(Handle, TensorDesc x, FilterDesc w, ConvDesc, TensorDesc y,
                                              int requested, int* returned, AlgoPerf* perf);
  Status (*GetConvolutionBackwardDataAlgorithm_v7)(Handle, FilterDesc w, TensorDesc dy, ConvDesc, TensorDesc dx,
                                                   int requested, int* returned, AlgoPerf* perf);
  Status (*GetConvolutionBackwardFilterAlgorithm_v7)(Handle, TensorDesc x, TensorDesc dy, ConvDesc, FilterDesc dw,
                                                     int requested, int* returned, AlgoPerf* perf);
  Status (*GetConvolutionForwardWorkspaceSize)(Handle, TensorDesc x, FilterDesc w, ConvDesc, TensorDesc y, int algo,
                                               std::size_t* bytes);
  Status (*GetConvolutionBackwardDataWorkspaceSize)(Handle, FilterDesc w, TensorDesc dy, ConvDesc, TensorDesc dx,
                                                    int algo, std::size_t* bytes);
  Status (*GetConvolutionBackwardFilterWorkspaceSize)(Handle, TensorDesc x, TensorDesc dy, ConvDesc, FilterDesc dw,
                                                      int algo, std::size_t* bytes);
  Status (*FindConvolutionForwardAlgorithmEx)(Handle, TensorDesc x, const void* xp, FilterDesc w, const void* wp,
                                              ConvDesc, TensorDesc y, void* yp, int requested, int* returned,
                                              AlgoPerf* perf, void* workspace, std::size_t workspace_bytes);
  Status (*FindConvolutionBackwardDataAlgorithmEx)(Handle, FilterDesc w, const void* wp, TensorDesc dy,
                                                   const void* dyp, ConvDesc, TensorDesc dx, void* dxp,
                                                   int requested, int* returned, AlgoPerf* perf, void* workspace,
                                                   std::size_t workspace_bytes);
  Status (*FindConvolutionBackwardFilterAlgorithmEx)(Handle, TensorDesc x, const void* xp, TensorDesc dy,
                                                     const void* dyp, ConvDesc, FilterDesc dw, void* dwp,
                                                     int requested, int* returned, AlgoPerf* perf, void* workspace,
                                                     std::size_t workspace_bytes);
  Status (*ConvolutionForward)(Handle, const void* alpha, TensorDesc x, const void* xp, FilterDesc w, const void* wp,
                               ConvDesc, int algo, void* workspace, std::size_t workspace_bytes, const void* beta,
                               TensorDesc y, void* yp);
  Status (*ConvolutionBackwardData)(Handle, const void* alpha, FilterDesc w, const void* wp, TensorDesc dy,
                                    const void* dyp, ConvDesc, int algo, void* workspace,
                                    std::size_t workspace_bytes, const void* beta, TensorDesc dx, void* dxp);
  Status (*ConvolutionBackwardFilter)(Handle, const void* alpha, TensorDesc x, const void* xp, TensorDesc dy,
                                      const void* dyp, ConvDesc, int algo, void* workspace,
                                      std::size_t workspace_bytes, const void* beta, FilterDesc dw, void* dwp);
  Status (*TransformTensor)(Handle, const void* alpha, TensorDesc x, const void* xp, const void* beta, TensorDesc y,
                            void* yp);
  // The graph API (cudnn_graph.h); all null when this library lacks one.
  Status (*BackendCreateDescriptor)(int type, BackendDesc* desc);
  Status (*BackendDestroyDescriptor)(BackendDesc);
  Status (*BackendFinalize)(BackendDesc);
  Status (*BackendSetAttribute)(BackendDesc, int name, int type, std::int64_t count, const void* elements);
  Status (*BackendGetAttribute)(BackendDesc, int name, int type, std::int64_t requested, std::int64_t* count,
                                void* elements);
  Status (*BackendExecute)(Handle, BackendDesc plan, BackendDesc variant_pack);
  bool has_graph() const { return BackendExecute != nullptr; }
};

}  // namespace volconv::cudnn
