// Problems other than depthwise on cuDNN 9 (opened at run time:
// cudnn_loader.h), as the route (cudnn_plan.h) maps them to cuDNN's forward,
// backward data or backward filter. Every operand is described NDHWC and
// packed: a view that is not (other strides, or a cuDNN output window larger
// than ours) is staged through a packed scratch copy with
// cudnnTransformTensor; a filter the route maps (transposed within groups,
// taps reversed) goes through filter_transform.h. The convolution runs on
// the graph API's kept plan (cudnn_graph.h); where that declines, on the
// legacy calls: the algorithm measured once per problem value
// (cudnnFind*Ex; deterministic ones preferred where
// cuda_plan::deterministic_engines says), kept in a bounded cache; the
// run asks cuDNN for that algorithm's workspace with its math type set.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "cudnn_api.h"
#include "cudnn_graph.h"
#include "cudnn_host.h"
#include "cudnn_loader.h"
#include "dense_nonfinite.h"
#include "filter_transform.h"
#include "kernel_axes.h"

namespace volconv::cuda {
namespace {

using cuda_plan::CudaRoute;
using cuda_plan::CudnnConv;

void ok(const cudnn::Api& api, cudnn::Status s, const char* op, const char* what) {
  if (s == cudnn::kSuccess) return;
  throw std::runtime_error(std::string("[") + op + "] cuDNN error in " + what + ": " + api.GetErrorString(s) + " (" +
                           std::to_string(s) + ").");
}

// One handle per (thread, device): a handle must not run on two threads at
// once. Never destroyed (safe at exit; a thread's handles outlive it).
cudnn::Handle handle_for(const cudnn::Api& api, int device, const char* op) {
  thread_local std::vector<cudnn::Handle> handles;
  if (int(handles.size()) <= device) handles.resize(std::size_t(device) + 1, nullptr);
  if (handles[std::size_t(device)] == nullptr) ok(api, api.Create(&handles[std::size_t(device)]), op, "cudnnCreate");
  return handles[std::size_t(device)];
}

int data_type(DType d) {
  return d == DType::float16 ? cudnn::kHalf : d == DType::bfloat16 ? cudnn::kBfloat16 : cudnn::kFloat;
}

Shape5 packed_strides(const Shape5& shape) {
  Shape5 s{};
  std::int64_t step = 1;
  for (int i = 4; i >= 0; --i) {
    s[i] = step;
    step *= shape[i];
  }
  return s;
}

bool is_packed(const Shape5& shape, const Shape5& strides) {
  const Shape5 p = packed_strides(shape);
  for (int i = 0; i < 5; ++i)
    if (shape[i] > 1 && strides[i] != p[i]) return false;
  return true;
}

Shape5 shape_of(std::int64_t n, const Int3& s, std::int64_t c) { return {n, s[0], s[1], s[2], c}; }

// A tensor descriptor of an NDHWC view: cuDNN orders dims N, C, D, H, W.
struct Tensor {
  const cudnn::Api& api;
  cudnn::TensorDesc d = nullptr;
  Tensor(const cudnn::Api& a, const char* op, DType dt, const Shape5& shape, const Shape5& strides) : api(a) {
    for (int i = 0; i < 5; ++i)
      if (shape[i] >= (std::int64_t(1) << 31) || strides[i] >= (std::int64_t(1) << 31) || strides[i] < 0)
        throw std::invalid_argument(std::string("[") + op +
                                    "] cuDNN describes a view by 32-bit, non-negative strides, but got strides " +
                                    std::to_string(strides[0]) + ", ...; run it on the cpu (stream=volconv.cpu).");
    ok(api, api.CreateTensorDescriptor(&d), op, "cudnnCreateTensorDescriptor");
    const int dims[5] = {int(shape[0]), int(shape[4]), int(shape[1]), int(shape[2]), int(shape[3])};
    const int st[5] = {int(strides[0]), int(strides[4]), int(strides[1]), int(strides[2]), int(strides[3])};
    ok(api, api.SetTensorNdDescriptor(d, data_type(dt), 5, dims, st), op, "cudnnSetTensorNdDescriptor");
  }
  ~Tensor() { api.DestroyTensorDescriptor(d); }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
};

// A packed (C_out, K..., C_in/groups) filter: cuDNN's NHWC filter format.
struct Filter {
  const cudnn::Api& api;
  cudnn::FilterDesc d = nullptr;
  Filter(const cudnn::Api& a, const char* op, DType dt, const Shape5& shape) : api(a) {
    ok(api, api.CreateFilterDescriptor(&d), op, "cudnnCreateFilterDescriptor");
    const int dims[5] = {int(shape[0]), int(shape[4]), int(shape[1]), int(shape[2]), int(shape[3])};
    ok(api, api.SetFilterNdDescriptor(d, data_type(dt), cudnn::kNhwc, 5, dims), op, "cudnnSetFilterNdDescriptor");
  }
  ~Filter() { api.DestroyFilterDescriptor(d); }
  Filter(const Filter&) = delete;
  Filter& operator=(const Filter&) = delete;
};

struct Conv {
  const cudnn::Api& api;
  cudnn::ConvDesc d = nullptr;
  Conv(const cudnn::Api& a, const char* op, const CudnnConv& c, DType dt) : api(a) {
    ok(api, api.CreateConvolutionDescriptor(&d), op, "cudnnCreateConvolutionDescriptor");
    int pad[3], stride[3], dil[3];
    for (int i = 0; i < 3; ++i) {
      pad[i] = int(c.pad[i]);
      stride[i] = int(c.stride[i]);
      dil[i] = int(c.dilation[i]);
    }
    // Accumulate in float32 for every storage type, as torch does.
    ok(api, api.SetConvolutionNdDescriptor(d, 3, pad, stride, dil, cudnn::kCrossCorrelation, cudnn::kFloat), op,
       "cudnnSetConvolutionNdDescriptor");
    ok(api, api.SetConvolutionGroupCount(d, int(c.groups)), op, "cudnnSetConvolutionGroupCount");
    // float32 stays float32 (no TF32, like torch with allow_tf32 off);
    // float16 and bfloat16 may use tensor cores.
    ok(api, api.SetConvolutionMathType(d, dt == DType::float32 ? cudnn::kFmaMath : cudnn::kTensorOpMath), op,
       "cudnnSetConvolutionMathType");
  }
  ~Conv() { api.DestroyConvolutionDescriptor(d); }
  Conv(const Conv&) = delete;
  Conv& operator=(const Conv&) = delete;
};

// The legacy API's view of the route's convolution: packed NDHWC x and y, the filter, the conv.
struct LegacyDescs {
  Tensor x, y;
  Filter w;
  Conv conv;
  LegacyDescs(const cudnn::Api& api, const char* op, DType dt, const Shape5& x_shape, const Shape5& y_shape,
              const Shape5& w_shape, const CudnnConv& c)
      : x(api, op, dt, x_shape, packed_strides(x_shape)),
        y(api, op, dt, y_shape, packed_strides(y_shape)),
        w(api, op, dt, w_shape),
        conv(api, op, c, dt) {}
};

// The algorithm measured for a problem value, and its workspace.
struct Algo {
  int algo = 0;
  std::size_t workspace = 0;  // as measured; the run asks cuDNN again
  int math = cudnn::kFmaMath;
};

using AlgoKey = std::array<std::int64_t, cuda_plan::kConvKeyFields>;

AlgoKey key_of(CudaRoute route, DType dt, int device, const CudnnConv& c, bool deterministic) {
  return cuda_plan::conv_key<std::tuple_size<AlgoKey>::value>(route, dt, device, c, deterministic);
}

// Bounded: at most kMaxAlgos problem values; the oldest half goes when full.
constexpr std::size_t kMaxAlgos = 512;
struct AlgoCache {
  std::mutex mutex;
  std::map<AlgoKey, std::pair<Algo, std::uint64_t>> entries;  // value, insertion number
  std::uint64_t next = 0;
};
AlgoCache& algo_cache() {
  static auto* c = new AlgoCache;  // never destroyed: safe at exit
  return *c;
}

// The largest workspace an algorithm may take while it is measured.
constexpr std::size_t kMaxWorkspace = std::size_t(1) << 30;

// cudnnFind*Ex's results that ran, fastest first (with `deterministic`,
// deterministic ones before the others). float32 keeps FMA math (no TF32);
// 16-bit takes the math each result was measured with (cuDNN asks that it
// be set before the run).
std::vector<Algo> ranked(const cudnn::AlgoPerf* perf, int n, DType dt, bool deterministic) {
  std::vector<Algo> out;
  for (int pass = 0; pass < (deterministic ? 2 : 1); ++pass)
    for (int i = 0; i < n; ++i)
      if (perf[i].status == cudnn::kSuccess &&
          (!deterministic || (perf[i].determinism == cudnn::kDeterministic) == (pass == 0)))
        out.push_back({perf[i].algo, perf[i].memory, dt == DType::float32 ? cudnn::kFmaMath : perf[i].math_type});
  return out;
}

std::size_t workspace_bound(const cudnn::AlgoPerf* perf, int n) {
  std::size_t bytes = 0;
  for (int i = 0; i < n; ++i)
    if (perf[i].status == cudnn::kSuccess && perf[i].memory <= kMaxWorkspace && perf[i].memory > bytes)
      bytes = perf[i].memory;
  return bytes;
}

// A packed NDHWC device copy of `full` shape whose window at `offset`
// (spatial) holds view `v` (device address), the rest zero; `v` itself when
// it already is one.
const void* packed_in(const cudnn::Api& api, cudnn::Handle h, Staged& staged, const ConstTensorView& v,
                      const void* data, const Shape5& full, const Int3& offset, const char* what) {
  if (full == v.shape && is_packed(v.shape, v.strides)) return data;
  const std::size_t size = dtype_size(v.dtype);
  const std::size_t bytes = std::size_t(numel(full)) * size;
  char* p = static_cast<char*>(staged.device_alloc(bytes, what));
  if (full != v.shape) check(cudaMemsetAsync(p, 0, bytes, staged.stream), staged.op, "cudaMemsetAsync");
  const Shape5 ps = packed_strides(full);
  const std::int64_t at = offset[0] * ps[1] + offset[1] * ps[2] + offset[2] * ps[3];
  const Tensor src(api, staged.op, v.dtype, v.shape, v.strides), dst(api, staged.op, v.dtype, v.shape, ps);
  const float one = 1.0f, zero = 0.0f;
  ok(api, api.TransformTensor(h, &one, src.d, data, &zero, dst.d, p + at * std::int64_t(size)), staged.op,
     "cudnnTransformTensor");
  return p;
}

// The result written packed: the view itself, or scratch of `full` shape
// whose window at `offset` finish() copies into the view.
struct PackedOut {
  void* packed = nullptr;
  bool direct = true;
  Shape5 full{};
  Int3 offset{};
};

PackedOut packed_out(Staged& staged, const TensorView& v, void* data, const Shape5& full, const Int3& offset) {
  PackedOut o;
  o.full = full;
  o.offset = offset;
  if (full == v.shape && is_packed(v.shape, v.strides)) {
    o.packed = data;
    return o;
  }
  o.direct = false;
  o.packed = staged.device_alloc(std::size_t(numel(full)) * dtype_size(v.dtype), "a packed copy of the result");
  return o;
}

void finish(const cudnn::Api& api, cudnn::Handle h, Staged& staged, const PackedOut& o, const TensorView& v,
            void* data) {
  if (o.direct) return;
  const Shape5 ps = packed_strides(o.full);
  const std::int64_t at = o.offset[0] * ps[1] + o.offset[1] * ps[2] + o.offset[2] * ps[3];
  const Tensor src(api, staged.op, v.dtype, v.shape, ps), dst(api, staged.op, v.dtype, v.shape, v.strides);
  const float one = 1.0f, zero = 0.0f;
  ok(api, api.TransformTensor(h, &one, src.d, static_cast<const char*>(o.packed) + at * std::int64_t(dtype_size(v.dtype)),
                              &zero, dst.d, data),
     staged.op, "cudnnTransformTensor");
}

// Writes the filter of `dst_shape` at `dst` from the one at `src` as `m`
// maps them (cudnn_plan.h's FilterMap; both in device memory).
void transform_filter(Staged& staged, const cuda_plan::FilterMap& m, std::int64_t groups, DType dt,
                      const void* src, const Shape5& src_strides, void* dst, const Shape5& dst_shape,
                      const Shape5& dst_strides) {
  FilterTransform t;
  t.groups = groups;
  t.b = dst_shape[0] / groups;
  t.a = dst_shape[4];
  for (int i = 0; i < 3; ++i) t.kernel[i] = dst_shape[1 + i];
  t.swap_channels = m.swap_channels;
  t.reverse_taps = m.reverse_taps;
  std::int64_t ss[5], ds[5];
  for (int i = 0; i < 5; ++i) {
    ss[i] = src_strides[i];
    ds[i] = dst_strides[i];
  }
  check(launch_filter_transform(t, src, ss, dst, ds, int(dtype_size(dt)), staged.stream), staged.op,
        "the filter transform");
}

// A weight gradient by the padding rule where cuDNN's engine may leave the
// padding's products out or multiply them (dense_nonfinite.h), on the
// problems cuda_plan::nonfinite_fix names (zero padding, input dilation 1):
// `recompute` for the skip rule.
void fix_nonfinite_padding(const detail::ConvProblem& problem, const void* x, const void* gy, void* dw,
                           bool recompute, cudaStream_t stream, const char* op) {
  const detail::ConvProblemGeometry& g = problem.geometry;
  DenseWgradFix f;
  f.x = x;
  f.gy = gy;
  f.dw = dw;
  f.batch = g.batch;
  f.out_channels = g.out_channels;
  f.in_channels_per_group = g.in_channels_per_group();
  f.groups = g.groups;
  set_axes(g, f);
  f.flip = g.flip;
  f.recompute = recompute;
  for (int i = 0; i < 5; ++i) {
    f.xs[i] = problem.input.strides[i];
    f.gys[i] = problem.output.strides[i];
    f.dws[i] = problem.result.strides[i];
  }
  check(cudaError_t(launch_dense_wgrad_nonfinite_fix(f, elem_of(problem.input.dtype), stream)), op,
        "the non-finite padding fix-up");
}

// A data problem by the padding rule where cuDNN's engine multiplies or
// skips otherwise (dense_nonfinite.h), on the problems
// cuda_plan::nonfinite_fix names (zero padding: the route refuses the rest).
void fix_nonfinite_weights(const detail::ConvProblem& problem, const void* x, const void* w, void* y,
                           cudaStream_t stream, const char* op) {
  const detail::ConvProblemGeometry& g = problem.geometry;
  DenseDataFix f;
  f.x = x;
  f.w = w;
  f.y = y;
  f.batch = g.batch;
  f.in_channels = g.in_channels;
  f.out_channels = g.out_channels;
  f.groups = g.groups;
  set_data_geometry(problem, f);
  f.in_k_out = problem.weight_layout == detail::WeightLayout::in_k_out;
  for (int i = 0; i < 5; ++i) {
    f.xs[i] = problem.input.strides[i];
    f.ws[i] = problem.weight.strides[i];
    f.ys[i] = problem.result.strides[i];
  }
  check(cudaError_t(launch_dense_data_nonfinite_fix(f, elem_of(problem.input.dtype), stream)), op,
        "the non-finite weight fix-up");
}

}  // namespace

void run_cudnn(const detail::ConvProblem& problem, const cuda_plan::CudaRouteChoice& route, const char* op,
               int device, Staged& staged) {
  const cudnn::Api& api = cudnn::api(op);
  const cudnn::Handle h = handle_for(api, device, op);
  ok(api, api.SetStream(h, staged.stream), op, "cudnnSetStream");
  const CudnnConv& c = route.conv;
  const cuda_plan::NonfiniteFix nonfinite = cuda_plan::nonfinite_fix(route, problem.zero_taps);
  const DType dt = problem.input.dtype;
  const Shape5 x_shape = shape_of(c.batch, c.in, c.in_channels);
  const Shape5 y_full = shape_of(c.batch, c.out_full, c.out_channels);
  const Int3 none{0, 0, 0};
  const Shape5 w_shape{c.out_channels, c.kernel[0], c.kernel[1], c.kernel[2], c.in_channels / c.groups};

  const TensorView& res = problem.result;
  const bool result_on_host = !in_device_memory(res.data);
  // A host result is copied in first, so the bytes between its elements
  // survive the copy back (asked once: each pointer query is host time).
  void* result = result_on_host ? const_cast<void*>(staged.in(res, "the result")) : res.data;
  if (route.route == CudaRoute::cudnn_backward_filter &&
      (numel(problem.input.shape) == 0 || numel(problem.output.shape) == 0)) {
    // No positions: the weight gradient is zero.
    const PackedOut dw = packed_out(staged, res, result, res.shape, none);
    check(cudaMemsetAsync(dw.packed, 0, std::size_t(numel(res.shape)) * dtype_size(dt), staged.stream), op,
          "cudaMemsetAsync");
    finish(api, h, staged, dw, res, result);
    if (result_on_host) staged.back(res, result);
    return;
  }
  // The legacy API's descriptors, made only when the graph API declines.
  std::optional<LegacyDescs> legacy_descs;
  auto L = [&]() -> const LegacyDescs& {
    if (!legacy_descs) legacy_descs.emplace(api, op, dt, x_shape, y_full, w_shape, c);
    return *legacy_descs;
  };
  // cuDNN's filter from the stored weight: packed as it is, or rewritten
  // (transposed within groups, taps reversed) as the route's map says.
  const void* w_view = nullptr;  // the stored weight on the device (data problems), for the fix-up
  auto filter_in = [&]() -> const void* {
    const void* stored = staged.in(problem.weight, "the weight");
    w_view = stored;
    if (!route.filter.any())
      return packed_in(api, h, staged, problem.weight, stored, w_shape, none, "a packed copy of the weight");
    void* p = staged.device_alloc(std::size_t(numel(w_shape)) * dtype_size(dt), "cuDNN's layout of the weight");
    transform_filter(staged, route.filter, c.groups, dt, stored, problem.weight.strides, p, w_shape,
                     packed_strides(w_shape));
    return p;
  };
  const float one = 1.0f, zero = 0.0f;
  constexpr int kCandidates = 16;
  cudnn::AlgoPerf perf[kCandidates];
  int n = 0;
  AlgoCache& cache = algo_cache();
  const bool deterministic = cuda_plan::deterministic_engines(route.route, cudnn::deterministic());
  const AlgoKey key = key_of(route.route, dt, device, c, deterministic);
  std::vector<Algo> candidates;
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    const auto it = cache.entries.find(key);
    if (it != cache.entries.end()) candidates.push_back(it->second.first);
  }
  const bool known = !candidates.empty();
  auto workspace = [&](std::size_t bytes) {
    return bytes == 0 ? nullptr : staged.device_alloc(bytes, "cuDNN's workspace");
  };
  auto remember = [&](const Algo& a) {
    std::lock_guard<std::mutex> lock(cache.mutex);
    if (cache.entries.size() >= kMaxAlgos) {
      const std::uint64_t cut = cache.next - kMaxAlgos / 2;
      for (auto it = cache.entries.begin(); it != cache.entries.end();)
        it = it->second.second < cut ? cache.entries.erase(it) : std::next(it);
    }
    cache.entries[key] = {a, cache.next++};
  };
  // Runs the first candidate cuDNN accepts (a measured algorithm may still
  // refuse the run, e.g. its math type with these sizes) and remembers it.
  // run(algo, workspace bytes) -> status; size(algo, &bytes) -> status.
  auto run_first = [&](const char* what, auto&& size, auto&& run) {
    cudnn::Status last = cudnn::kSuccess;
    for (const Algo& a : candidates) {
      ok(api, api.SetConvolutionMathType(L().conv.d, a.math), op, "cudnnSetConvolutionMathType");
      std::size_t bytes = 0;
      last = size(a.algo, &bytes);
      if (last != cudnn::kSuccess) continue;
      bytes = std::max(bytes, a.workspace);
      last = run(a.algo, workspace(bytes), bytes);
      if (last == cudnn::kSuccess) {
        if (!known) remember(a);
        return;
      }
    }
    if (last != cudnn::kSuccess) ok(api, last, op, what);
    throw std::invalid_argument(std::string("[") + op + "] cuDNN has no algorithm for this problem (" + what +
                                ": none of its candidates ran); run it on the cpu (stream=volconv.cpu).");
  };

  if (route.route == CudaRoute::cudnn_forward) {
    const void* x_view = staged.in(problem.input, "the input");
    const void* x = packed_in(api, h, staged, problem.input, x_view, x_shape, none,
                              "a packed copy of the input");
    const void* w = filter_in();
    const PackedOut y = packed_out(staged, res, result, y_full, c.offset);
    if (!run_graph(api, h, route.route, dt, deterministic, device, c, x, w, y.packed, staged)) {
      if (!known) {
        ok(api, api.GetConvolutionForwardAlgorithm_v7(h, L().x.d, L().w.d, L().conv.d, L().y.d, kCandidates, &n, perf),
           op, "cudnnGetConvolutionForwardAlgorithm_v7");
        const std::size_t bound = workspace_bound(perf, n);
        ok(api, api.FindConvolutionForwardAlgorithmEx(h, L().x.d, x, L().w.d, w, L().conv.d, L().y.d, y.packed,
                                                      kCandidates, &n, perf, workspace(bound), bound),
           op, "cudnnFindConvolutionForwardAlgorithmEx");
        candidates = ranked(perf, n, dt, deterministic);
      }
      run_first(
          "cudnnConvolutionForward",
          [&](int a, std::size_t* bytes) {
            return api.GetConvolutionForwardWorkspaceSize(h, L().x.d, L().w.d, L().conv.d, L().y.d, a, bytes);
          },
          [&](int a, void* ws, std::size_t bytes) {
            return api.ConvolutionForward(h, &one, L().x.d, x, L().w.d, w, L().conv.d, a, ws, bytes, &zero, L().y.d,
                                          y.packed);
          });
    }
    finish(api, h, staged, y, res, result);
    if (nonfinite == cuda_plan::NonfiniteFix::weight_channels)
      fix_nonfinite_weights(problem, x_view, w_view, result, staged.stream, op);
  } else if (route.route == CudaRoute::cudnn_backward_data) {
    const void* x_view = staged.in(problem.input, "the output gradient");
    const void* dy = packed_in(api, h, staged, problem.input, x_view, y_full,
                               c.offset, "a packed copy of the output gradient");
    const void* w = filter_in();
    const PackedOut dx = packed_out(staged, res, result, x_shape, none);
    if (!run_graph(api, h, route.route, dt, deterministic, device, c, dx.packed, w, dy, staged)) {
      if (!known) {
        ok(api, api.GetConvolutionBackwardDataAlgorithm_v7(h, L().w.d, L().y.d, L().conv.d, L().x.d, kCandidates, &n,
                                                           perf),
           op, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
        const std::size_t bound = workspace_bound(perf, n);
        ok(api, api.FindConvolutionBackwardDataAlgorithmEx(h, L().w.d, w, L().y.d, dy, L().conv.d, L().x.d, dx.packed,
                                                           kCandidates, &n, perf, workspace(bound), bound),
           op, "cudnnFindConvolutionBackwardDataAlgorithmEx");
        candidates = ranked(perf, n, dt, deterministic);
      }
      run_first(
          "cudnnConvolutionBackwardData",
          [&](int a, std::size_t* bytes) {
            return api.GetConvolutionBackwardDataWorkspaceSize(h, L().w.d, L().y.d, L().conv.d, L().x.d, a, bytes);
          },
          [&](int a, void* ws, std::size_t bytes) {
            return api.ConvolutionBackwardData(h, &one, L().w.d, w, L().y.d, dy, L().conv.d, a, ws, bytes, &zero,
                                               L().x.d, dx.packed);
          });
    }
    finish(api, h, staged, dx, res, result);
    if (nonfinite == cuda_plan::NonfiniteFix::weight_channels)
      fix_nonfinite_weights(problem, x_view, w_view, result, staged.stream, op);
  } else {
    // cuDNN's filter gradient: the result itself, or scratch that finish()
    // copies into it, or (a filter map) scratch rewritten into it.
    PackedOut dw;
    if (route.filter.any()) {
      dw.direct = false;
      dw.packed = staged.device_alloc(std::size_t(numel(w_shape)) * dtype_size(dt), "cuDNN's filter gradient");
    } else {
      dw = packed_out(staged, res, result, w_shape, none);
    }
    // A transposed conv's weight gradient: its output gradient is cuDNN's x.
    const ConstTensorView& xv = route.swap_operands ? problem.output : problem.input;
    const ConstTensorView& dyv = route.swap_operands ? problem.input : problem.output;
    const void* x_view = staged.in(xv, "cuDNN's x");
    const void* x = packed_in(api, h, staged, xv, x_view, x_shape, none, "a packed copy of cuDNN's x");
    const void* dy_view = staged.in(dyv, "cuDNN's dy");
    const void* dy = packed_in(api, h, staged, dyv, dy_view, y_full, c.offset, "a packed copy of cuDNN's dy");
    if (!run_graph(api, h, route.route, dt, deterministic, device, c, x, dw.packed, dy, staged)) {
      if (!known) {
        ok(api, api.GetConvolutionBackwardFilterAlgorithm_v7(h, L().x.d, L().y.d, L().conv.d, L().w.d, kCandidates,
                                                             &n, perf),
           op, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
        const std::size_t bound = workspace_bound(perf, n);
        ok(api, api.FindConvolutionBackwardFilterAlgorithmEx(h, L().x.d, x, L().y.d, dy, L().conv.d, L().w.d,
                                                             dw.packed, kCandidates, &n, perf, workspace(bound),
                                                             bound),
           op, "cudnnFindConvolutionBackwardFilterAlgorithmEx");
        candidates = ranked(perf, n, dt, deterministic);
      }
      run_first(
          "cudnnConvolutionBackwardFilter",
          [&](int a, std::size_t* bytes) {
            return api.GetConvolutionBackwardFilterWorkspaceSize(h, L().x.d, L().y.d, L().conv.d, L().w.d, a, bytes);
          },
          [&](int a, void* ws, std::size_t bytes) {
            return api.ConvolutionBackwardFilter(h, &one, L().x.d, x, L().y.d, dy, L().conv.d, a, ws, bytes, &zero,
                                                 L().w.d, dw.packed);
          });
    }
    if (route.filter.any())
      transform_filter(staged, route.filter, c.groups, dt, dw.packed, packed_strides(w_shape), result, res.shape,
                       res.strides);
    else
      finish(api, h, staged, dw, res, result);
    if (nonfinite == cuda_plan::NonfiniteFix::padding_taps ||
        nonfinite == cuda_plan::NonfiniteFix::padding_taps_recomputed)
      fix_nonfinite_padding(problem, x_view, dy_view, result,
                            nonfinite == cuda_plan::NonfiniteFix::padding_taps_recomputed, staged.stream, op);
  }
  if (result_on_host) staged.back(res, result);
}

}  // namespace volconv::cuda
