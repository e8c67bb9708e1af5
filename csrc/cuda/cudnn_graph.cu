#include "cudnn_graph.h"

#include "cudnn_loader.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace volconv::cuda {
namespace {

using cuda_plan::CudaRoute;
using cuda_plan::CudnnConv;
namespace c9 = cudnn;

// An owned graph-API descriptor (null when its creation failed).
struct Desc {
  const c9::Api* api = nullptr;
  c9::BackendDesc d = nullptr;
  Desc() = default;
  Desc(const c9::Api& a, int type) : api(&a) {
    if (a.BackendCreateDescriptor(type, &d) != c9::kSuccess) d = nullptr;
  }
  ~Desc() {
    if (d != nullptr) api->BackendDestroyDescriptor(d);
  }
  Desc(Desc&& o) noexcept : api(o.api), d(std::exchange(o.d, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    std::swap(api, o.api);
    std::swap(d, o.d);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};

// Sets attributes and finalizes until the first failure, then does nothing.
struct Builder {
  const c9::Api& api;
  bool ok = true;
  void set(const Desc& d, int name, int type, std::int64_t n, const void* v) {
    ok = ok && d.d != nullptr && api.BackendSetAttribute(d.d, name, type, n, v) == c9::kSuccess;
  }
  void finalize(const Desc& d) { ok = ok && d.d != nullptr && api.BackendFinalize(d.d) == c9::kSuccess; }
};

// A finalized plan and what it was built from (kept alive with it).
struct Plan {
  Desc x, w, y, conv, op, graph, cfg, plan;
  std::int64_t workspace = 0;
  bool nondeterministic = false;  // the kept engine's numerical notes say so
};

int data_type(DType d) { return d == DType::float16 ? c9::kHalf : d == DType::bfloat16 ? c9::kBfloat16 : c9::kFloat; }

// The largest power of two (at most 16) dividing the address: engines that
// load 16 bytes at a time need it, and it is part of the plan's key.
std::int64_t alignment(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::int64_t al = 16;
  while (al > 1 && a % std::uintptr_t(al) != 0) al /= 2;
  return al;
}

bool has_note(const c9::Api& api, const Desc& cfg, int note) {
  Desc engine(api, c9::kBackendEngine);
  std::int64_t n = 0;
  if (engine.d == nullptr ||
      api.BackendGetAttribute(cfg.d, c9::kAttrEngineCfgEngine, c9::kTypeBackendDescriptor, 1, &n, &engine.d) !=
          c9::kSuccess)
    return true;  // unknown: treated as having it (never picked)
  int notes[c9::kNoteTypeCount] = {};
  n = 0;
  if (api.BackendGetAttribute(engine.d, c9::kAttrEngineNumericalNote, c9::kTypeNumericalNote, c9::kNoteTypeCount, &n,
                              notes) != c9::kSuccess)
    return true;
  for (std::int64_t i = 0; i < n; ++i)
    if (notes[i] == note) return true;
  return false;
}

// Runs `plan` on the handle's stream over the operands (uids 1, 2, 3).
c9::Status execute(const c9::Api& api, c9::Handle h, const Desc& plan, const void* const (&ptrs)[3], void* workspace) {
  Builder b{api};
  Desc pack(api, c9::kBackendVariantPack);
  const std::int64_t uids[3] = {1, 2, 3};
  b.set(pack, c9::kAttrVariantPackUniqueIds, c9::kTypeInt64, 3, uids);
  b.set(pack, c9::kAttrVariantPackDataPointers, c9::kTypeVoidPtr, 3, ptrs);
  b.set(pack, c9::kAttrVariantPackWorkspace, c9::kTypeVoidPtr, 1, &workspace);
  b.finalize(pack);
  return b.ok ? api.BackendExecute(h, plan.d, pack.d) : c9::Status(-1);
}

// Milliseconds of `reps` runs of `plan` after one unmeasured run, or a
// negative number when it does not run.
float time_plan(const c9::Api& api, c9::Handle h, const Desc& plan, const void* const (&ptrs)[3], void* workspace,
                cudaStream_t stream) {
  constexpr int reps = 3;
  if (execute(api, h, plan, ptrs, workspace) != c9::kSuccess) return -1.0f;
  cudaEvent_t start = nullptr, stop = nullptr;
  float ms = -1.0f;
  if (cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess &&
      cudaEventRecord(start, stream) == cudaSuccess) {
    bool ran = true;
    for (int i = 0; i < reps && ran; ++i) ran = execute(api, h, plan, ptrs, workspace) == c9::kSuccess;
    if (ran && cudaEventRecord(stop, stream) == cudaSuccess && cudaEventSynchronize(stop) == cudaSuccess)
      cudaEventElapsedTime(&ms, start, stop);
  }
  if (start != nullptr) cudaEventDestroy(start);
  if (stop != nullptr) cudaEventDestroy(stop);
  cudaGetLastError();
  return ms;
}

// Builds the plan, or returns null when no engine passes the filters. The
// candidates (at most kTimed; with `deterministic`, deterministic ones if
// any) are timed on the operands, as torch's cudnn.benchmark does, and the
// fastest kept.
std::unique_ptr<Plan> build(const c9::Api& api, c9::Handle h, CudaRoute route, DType dt, bool deterministic,
                            const CudnnConv& c, const std::array<std::int64_t, 3>& align,
                            const void* const (&ptrs)[3], Staged& staged) {
  auto p = std::make_unique<Plan>();
  Builder b{api};
  const int type = data_type(dt);
  // NDHWC in memory, dims in cuDNN's order (N, C, D, H, W).
  auto tensor = [&](Desc& t, std::int64_t uid, std::int64_t n, std::int64_t ch, const Int3& sp, std::int64_t al) {
    t = Desc(api, c9::kBackendTensor);
    const std::int64_t dims[5] = {n, ch, sp[0], sp[1], sp[2]};
    const std::int64_t strides[5] = {sp[0] * sp[1] * sp[2] * ch, 1, sp[1] * sp[2] * ch, sp[2] * ch, ch};
    b.set(t, c9::kAttrTensorDataType, c9::kTypeDataType, 1, &type);
    b.set(t, c9::kAttrTensorDimensions, c9::kTypeInt64, 5, dims);
    b.set(t, c9::kAttrTensorStrides, c9::kTypeInt64, 5, strides);
    b.set(t, c9::kAttrTensorUniqueId, c9::kTypeInt64, 1, &uid);
    b.set(t, c9::kAttrTensorByteAlignment, c9::kTypeInt64, 1, &al);
    b.finalize(t);
  };
  tensor(p->x, 1, c.batch, c.in_channels, c.in, align[0]);
  tensor(p->w, 2, c.out_channels, c.in_channels / c.groups, c.kernel, align[1]);
  tensor(p->y, 3, c.batch, c.out_channels, c.out_full, align[2]);

  p->conv = Desc(api, c9::kBackendConvolution);
  const int comp = c9::kFloat, mode = c9::kCrossCorrelation;
  const std::int64_t dims = 3;
  std::int64_t pad[3], stride[3], dil[3];
  for (int i = 0; i < 3; ++i) {
    pad[i] = c.pad[i];
    stride[i] = c.stride[i];
    dil[i] = c.dilation[i];
  }
  b.set(p->conv, c9::kAttrConvCompType, c9::kTypeDataType, 1, &comp);
  b.set(p->conv, c9::kAttrConvMode, c9::kTypeConvolutionMode, 1, &mode);
  b.set(p->conv, c9::kAttrConvSpatialDims, c9::kTypeInt64, 1, &dims);
  b.set(p->conv, c9::kAttrConvDilations, c9::kTypeInt64, 3, dil);
  b.set(p->conv, c9::kAttrConvFilterStrides, c9::kTypeInt64, 3, stride);
  b.set(p->conv, c9::kAttrConvPrePaddings, c9::kTypeInt64, 3, pad);
  b.set(p->conv, c9::kAttrConvPostPaddings, c9::kTypeInt64, 3, pad);
  b.finalize(p->conv);

  // Each operation's attributes run alpha, beta, conv, then its three
  // tensors in the same roles: forward w, x, y; backward data w, dx, dy;
  // backward filter dw, x, dy.
  int op_type = c9::kBackendOpConvForward, base = c9::kAttrConvForwardAlpha;
  if (route == CudaRoute::cudnn_backward_data) {
    op_type = c9::kBackendOpConvBackwardData;
    base = c9::kAttrConvBackwardDataAlpha;
  } else if (route == CudaRoute::cudnn_backward_filter) {
    op_type = c9::kBackendOpConvBackwardFilter;
    base = c9::kAttrConvBackwardFilterAlpha;
  }
  p->op = Desc(api, op_type);
  const float alpha = 1.0f, beta = 0.0f;
  b.set(p->op, base, c9::kTypeFloat, 1, &alpha);
  b.set(p->op, base + 1, c9::kTypeFloat, 1, &beta);
  b.set(p->op, base + 2, c9::kTypeBackendDescriptor, 1, &p->conv.d);
  b.set(p->op, base + 3, c9::kTypeBackendDescriptor, 1, &p->w.d);
  b.set(p->op, base + 4, c9::kTypeBackendDescriptor, 1, &p->x.d);
  b.set(p->op, base + 5, c9::kTypeBackendDescriptor, 1, &p->y.d);
  b.finalize(p->op);

  p->graph = Desc(api, c9::kBackendOperationGraph);
  b.set(p->graph, c9::kAttrOperationGraphHandle, c9::kTypeHandle, 1, &h);
  b.set(p->graph, c9::kAttrOperationGraphOps, c9::kTypeBackendDescriptor, 1, &p->op.d);
  b.finalize(p->graph);
  if (!b.ok) return nullptr;

  // The heuristics' engine configurations, instant mode's then the fallback list.
  std::vector<Desc> cfgs;
  for (int heur_mode : {c9::kHeurInstant, c9::kHeurFallback}) {
    Builder hb{api};
    Desc heur(api, c9::kBackendEngineHeur);
    hb.set(heur, c9::kAttrEngineHeurOperationGraph, c9::kTypeBackendDescriptor, 1, &p->graph.d);
    hb.set(heur, c9::kAttrEngineHeurMode, c9::kTypeHeurMode, 1, &heur_mode);
    hb.finalize(heur);
    std::int64_t n = 0;
    if (!hb.ok ||
        api.BackendGetAttribute(heur.d, c9::kAttrEngineHeurResults, c9::kTypeBackendDescriptor, 0, &n, nullptr) !=
            c9::kSuccess ||
        n <= 0)
      continue;
    std::vector<Desc> got;
    std::vector<c9::BackendDesc> raw;
    for (std::int64_t i = 0; i < n; ++i) {
      got.emplace_back(api, c9::kBackendEngineCfg);
      raw.push_back(got.back().d);
    }
    std::int64_t filled = 0;
    if (api.BackendGetAttribute(heur.d, c9::kAttrEngineHeurResults, c9::kTypeBackendDescriptor, n, &filled,
                                raw.data()) != c9::kSuccess)
      continue;
    for (std::int64_t i = 0; i < filled && i < n; ++i) cfgs.push_back(std::move(got[std::size_t(i)]));
  }
  // Deterministic engines first when asked; never one that computes in less
  // than float32 or (float32 data) on tensor cores.
  constexpr std::int64_t kMaxWorkspace = std::int64_t(1) << 30;
  // Twelve (six until the fastest engines were allowed): a guess at a
  // first-call cost bound, not a measured optimum; torch times them all.
  constexpr std::size_t kTimed = 12;
  struct Candidate {
    Desc cfg, plan;
    std::int64_t workspace;
  };
  std::vector<Candidate> found;
  for (int pass = 0; pass < 2 && found.empty(); ++pass)
    for (Desc& cfg : cfgs) {
      if (found.size() >= kTimed) break;
      if (cfg.d == nullptr || has_note(api, cfg, c9::kNoteDownConvertInputs) ||
          has_note(api, cfg, c9::kNoteReducedPrecisionReduction) ||
          (dt == DType::float32 && has_note(api, cfg, c9::kNoteTensorCore)) ||
          (deterministic && pass == 0 && has_note(api, cfg, c9::kNoteNondeterministic)))
        continue;
      Builder pb{api};
      Desc plan(api, c9::kBackendExecutionPlan);
      pb.set(plan, c9::kAttrExecutionPlanHandle, c9::kTypeHandle, 1, &h);
      pb.set(plan, c9::kAttrExecutionPlanEngineConfig, c9::kTypeBackendDescriptor, 1, &cfg.d);
      pb.finalize(plan);
      std::int64_t ws = 0, n = 0;
      if (!pb.ok ||
          api.BackendGetAttribute(plan.d, c9::kAttrExecutionPlanWorkspaceSize, c9::kTypeInt64, 1, &n, &ws) !=
              c9::kSuccess ||
          ws < 0 || ws > kMaxWorkspace)
        continue;
      found.push_back({std::move(cfg), std::move(plan), ws});
    }
  if (found.empty()) return nullptr;
  std::size_t best = 0;
  if (found.size() > 1) {
    std::int64_t most = 0;
    for (const Candidate& f : found) most = std::max(most, f.workspace);
    void* workspace = most > 0 ? staged.device_alloc(std::size_t(most), "cuDNN's workspace") : nullptr;
    float best_ms = -1.0f;
    for (std::size_t i = 0; i < found.size(); ++i) {
      const float ms = time_plan(api, h, found[i].plan, ptrs, workspace, staged.stream);
      if (ms >= 0.0f && (best_ms < 0.0f || ms < best_ms)) {
        best_ms = ms;
        best = i;
      }
    }
    if (best_ms < 0.0f) return nullptr;  // none ran: the legacy calls will say why
  }
  p->cfg = std::move(found[best].cfg);
  p->plan = std::move(found[best].plan);
  p->workspace = found[best].workspace;
  p->nondeterministic = has_note(api, p->cfg, c9::kNoteNondeterministic);
  return p;
}

using Key = std::array<std::int64_t, cuda_plan::kConvKeyFields + 3>;  // + the alignments


Key key_of(CudaRoute route, DType dt, bool deterministic, int device, const CudnnConv& c,
           const std::array<std::int64_t, 3>& align) {
  Key k = cuda_plan::conv_key<std::tuple_size<Key>::value>(route, dt, device, c, deterministic);
  for (int i = 0; i < 3; ++i) k[cuda_plan::kConvKeyFields + std::size_t(i)] = align[std::size_t(i)];
  return k;
}

}  // namespace

bool run_graph(const c9::Api& api, c9::Handle h, CudaRoute route, DType dt, bool deterministic, int device,
               const CudnnConv& c, const void* x, const void* w, const void* y, Staged& staged) {
  if (!api.has_graph() || !cudnn::graph_enabled()) return false;
  const std::array<std::int64_t, 3> align{alignment(x), alignment(w), alignment(y)};
  const void* const ptrs[3] = {x, w, y};
  // Per thread, as the handle the plans were built with: a plan (or the
  // knowledge that there is none) per problem value; at most kMaxPlans.
  // Never destroyed (safe at exit, as the handles).
  constexpr std::size_t kMaxPlans = 256;
  thread_local auto& plans = *new std::map<Key, std::unique_ptr<Plan>>;
  const Key key = key_of(route, dt, deterministic, device, c, align);
  auto it = plans.find(key);
  const bool fresh = it == plans.end();
  if (fresh) {
    if (plans.size() >= kMaxPlans) plans.clear();
    it = plans.emplace(key, build(api, h, route, dt, deterministic, c, align, ptrs, staged)).first;
  }
  const Plan* plan = it->second.get();
  if (plan == nullptr) return false;
  void* workspace =
      plan->workspace > 0 ? staged.device_alloc(std::size_t(plan->workspace), "cuDNN's workspace") : nullptr;
  const c9::Status s = execute(api, h, plan->plan, ptrs, workspace);
  if (s != c9::kSuccess) {
    // A plan that never ran is dropped for the legacy calls; one that ran before is an error now.
    if (fresh) {
      it->second.reset();
      return false;
    }
    throw std::runtime_error(std::string("[") + staged.op + "] cuDNN error in cudnnBackendExecute: " +
                             (s == c9::Status(-1) ? "the variant pack could not be made" : api.GetErrorString(s)) +
                             ".");
  }
  if (fresh) cudnn::note_graph_plan(plan->nondeterministic);
  return true;
}

}  // namespace volconv::cuda
