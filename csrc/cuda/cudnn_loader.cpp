#include "cudnn_loader.h"

#include <atomic>
#include <mutex>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define VOLCONV_HAS_DLOPEN 1
#endif

namespace volconv::cudnn {
namespace {

#ifdef VOLCONV_HAS_DLOPEN
std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown error";
}

// cuDNN 9's libcudnn.so.9 is a front that opens its sub-libraries by name on
// first use: open those beside it first, so that name finds them wherever
// the front came from. A missing one is left for cuDNN to report.
void open_sublibraries(const std::string& dir) {
  for (const char* part : {"graph", "ops", "cnn", "heuristic", "engines_runtime_compiled", "engines_precompiled"})
    dlopen((dir + "/libcudnn_" + part + ".so.9").c_str(), RTLD_NOW | RTLD_GLOBAL);
}
#endif

struct Process {
  std::mutex mutex;
  std::vector<std::string> dirs;
  bool system_loader = true;
  bool tried = false;
  std::string failure;  // the missing message's "tried" part, after a failed try
  Api api{};
};

Process& process() {
  static auto* p = new Process;  // never destroyed: safe at exit
  return *p;
}

template <class F>
bool load(void* handle, const char* name, F& f, std::string& missing) {
#ifdef VOLCONV_HAS_DLOPEN
  f = reinterpret_cast<F>(dlsym(handle, name));
#else
  f = nullptr;
#endif
  if (f == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
  return f != nullptr;
}

}  // namespace

Opened open_library(const std::vector<std::string>& dirs, bool system_loader) {
  Opened o;
#ifdef VOLCONV_HAS_DLOPEN
  // Already in the process (torch's copy): use that one, never a second.
  if (void* h = dlopen(kLibraryName, RTLD_NOW | RTLD_NOLOAD)) {
    o.handle = h;
    o.path = std::string(kLibraryName) + " (already loaded)";
    return o;
  }
  for (const std::string& dir : dirs) {
    const std::string path = dir + "/" + kLibraryName;
    if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      open_sublibraries(dir);
      o.handle = h;
      o.path = path;
      return o;
    }
    o.tried += path + " (" + dl_error() + "); ";
  }
  if (system_loader) {
    if (void* h = dlopen(kLibraryName, RTLD_NOW | RTLD_GLOBAL)) {
      o.handle = h;
      o.path = kLibraryName;
      return o;
    }
    o.tried += std::string("the system loader's ") + kLibraryName + " (" + dl_error() + "); ";
  }
  if (o.tried.empty()) o.tried = "nowhere (no directory given and the system loader not asked); ";
#else
  (void)dirs;
  (void)system_loader;
  o.tried = "nowhere: this platform has no dlopen; ";
#endif
  o.tried.resize(o.tried.size() - 2);
  return o;
}

std::string missing_message(const char* op, const std::string& tried) {
  return std::string("[") + op +
         "] The CUDA backend runs convolutions other than depthwise on cuDNN 9, which could not be loaded: tried " +
         tried +
         ". Install the nvidia-cudnn-cu13 (or -cu12) wheel, e.g. `pip install nvidia-cudnn-cu13` (torch's CUDA "
         "wheels bring it), or put libcudnn.so.9 on the library path; or run it on the cpu (stream=volconv.cpu).";
}

std::string resolve(void* handle, Api& a) {
  std::string missing;
  load(handle, "cudnnGetVersion", a.GetVersion, missing);
  load(handle, "cudnnGetErrorString", a.GetErrorString, missing);
  load(handle, "cudnnCreate", a.Create, missing);
  load(handle, "cudnnSetStream", a.SetStream, missing);
  load(handle, "cudnnCreateTensorDescriptor", a.CreateTensorDescriptor, missing);
  load(handle, "cudnnSetTensorNdDescriptor", a.SetTensorNdDescriptor, missing);
  load(handle, "cudnnDestroyTensorDescriptor", a.DestroyTensorDescriptor, missing);
  load(handle, "cudnnCreateFilterDescriptor", a.CreateFilterDescriptor, missing);
  load(handle, "cudnnSetFilterNdDescriptor", a.SetFilterNdDescriptor, missing);
  load(handle, "cudnnDestroyFilterDescriptor", a.DestroyFilterDescriptor, missing);
  load(handle, "cudnnCreateConvolutionDescriptor", a.CreateConvolutionDescriptor, missing);
  load(handle, "cudnnSetConvolutionNdDescriptor", a.SetConvolutionNdDescriptor, missing);
  load(handle, "cudnnSetConvolutionGroupCount", a.SetConvolutionGroupCount, missing);
  load(handle, "cudnnSetConvolutionMathType", a.SetConvolutionMathType, missing);
  load(handle, "cudnnDestroyConvolutionDescriptor", a.DestroyConvolutionDescriptor, missing);
  load(handle, "cudnnGetConvolutionForwardAlgorithm_v7", a.GetConvolutionForwardAlgorithm_v7, missing);
  load(handle, "cudnnGetConvolutionBackwardDataAlgorithm_v7", a.GetConvolutionBackwardDataAlgorithm_v7, missing);
  load(handle, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", a.GetConvolutionBackwardFilterAlgorithm_v7,
       missing);
  load(handle, "cudnnGetConvolutionForwardWorkspaceSize", a.GetConvolutionForwardWorkspaceSize, missing);
  load(handle, "cudnnGetConvolutionBackwardDataWorkspaceSize", a.GetConvolutionBackwardDataWorkspaceSize, missing);
  load(handle, "cudnnGetConvolutionBackwardFilterWorkspaceSize", a.GetConvolutionBackwardFilterWorkspaceSize,
       missing);
  load(handle, "cudnnFindConvolutionForwardAlgorithmEx", a.FindConvolutionForwardAlgorithmEx, missing);
  load(handle, "cudnnFindConvolutionBackwardDataAlgorithmEx", a.FindConvolutionBackwardDataAlgorithmEx, missing);
  load(handle, "cudnnFindConvolutionBackwardFilterAlgorithmEx", a.FindConvolutionBackwardFilterAlgorithmEx,
       missing);
  load(handle, "cudnnConvolutionForward", a.ConvolutionForward, missing);
  load(handle, "cudnnConvolutionBackwardData", a.ConvolutionBackwardData, missing);
  load(handle, "cudnnConvolutionBackwardFilter", a.ConvolutionBackwardFilter, missing);
  load(handle, "cudnnTransformTensor", a.TransformTensor, missing);
  if (!missing.empty()) return "it has no " + missing;
  // The graph API is optional: without all of it the legacy calls run.
  std::string no_graph;
  load(handle, "cudnnBackendCreateDescriptor", a.BackendCreateDescriptor, no_graph);
  load(handle, "cudnnBackendDestroyDescriptor", a.BackendDestroyDescriptor, no_graph);
  load(handle, "cudnnBackendFinalize", a.BackendFinalize, no_graph);
  load(handle, "cudnnBackendSetAttribute", a.BackendSetAttribute, no_graph);
  load(handle, "cudnnBackendGetAttribute", a.BackendGetAttribute, no_graph);
  load(handle, "cudnnBackendExecute", a.BackendExecute, no_graph);
  if (!no_graph.empty()) a.BackendExecute = nullptr;
  const std::size_t version = a.GetVersion();
  if (version < 90000) return "it is version " + std::to_string(version) + ", older than 9";
  return "";
}

namespace {
std::atomic<bool> g_graph_enabled{true};
std::atomic<bool> g_deterministic{false};
std::atomic<std::int64_t> g_graph_plans{0};
std::atomic<std::int64_t> g_nondeterministic_plans{0};
}  // namespace

void set_deterministic(bool enabled) { g_deterministic.store(enabled); }
bool deterministic() { return g_deterministic.load(); }

void set_graph_enabled(bool enabled) { g_graph_enabled.store(enabled); }
bool graph_enabled() { return g_graph_enabled.load(); }
void note_graph_plan(bool nondeterministic) {
  g_graph_plans.fetch_add(1);
  if (nondeterministic) g_nondeterministic_plans.fetch_add(1);
}
std::int64_t graph_plans_built() { return g_graph_plans.load(); }
std::int64_t nondeterministic_plans_built() { return g_nondeterministic_plans.load(); }

void set_search(const std::vector<std::string>& dirs, bool system_loader) {
  Process& p = process();
  std::lock_guard<std::mutex> lock(p.mutex);
  p.dirs = dirs;
  p.system_loader = system_loader;
  if (!p.failure.empty()) p.tried = false;  // a failed search is tried again; a loaded cuDNN stays
}

const Api& api(const char* op) {
  Process& p = process();
  std::lock_guard<std::mutex> lock(p.mutex);
  if (!p.tried) {
    p.tried = true;
    p.failure.clear();
    const Opened o = open_library(p.dirs, p.system_loader);
    if (o.handle == nullptr) {
      p.failure = o.tried;
    } else {
      Api a{};
      const std::string why = resolve(o.handle, a);
      if (why.empty())
        p.api = a;
      else
        p.failure = o.path + " (" + why + ")";
    }
  }
  if (!p.failure.empty()) throw std::invalid_argument(missing_message(op, p.failure));
  return p.api;
}

}  // namespace volconv::cudnn
