// Finding and opening cuDNN at run time, as torch does: the nvidia-cudnn
// wheel's lib directory (the Python layer passes the candidates), else the
// system loader. Plain C++ (dlopen), built on every platform, so the
// message for a missing cuDNN is tested without a GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cudnn_api.h"

namespace volconv::cudnn {

// The library's file name (cuDNN 9).
constexpr const char* kLibraryName = "libcudnn.so.9";

struct Opened {
  void* handle = nullptr;  // dlopen handle, or nullptr
  std::string path;        // where it was found
  std::string tried;       // when not found: each place tried and why it failed
};

// A copy already in the process (torch loaded it) first, then
// dir/libcudnn.so.9 for each of `dirs`, then the system loader by name when
// system_loader; the sub-libraries beside it are opened with it.
Opened open_library(const std::vector<std::string>& dirs, bool system_loader);

// The message an op raises when cuDNN could not be opened (or lacks a
// function, or is older than 9): names the op, where it was looked for and
// how to install it.
std::string missing_message(const char* op, const std::string& tried);

// Where the process looks (set by volconv/_cuda.py before the first CUDA
// call; tests point it elsewhere).
void set_search(const std::vector<std::string>& dirs, bool system_loader);

// Whether the graph API runs the convolutions when the library has it (on
// by default); off, the legacy calls run them (volconv._core._cudnn_use_graph,
// so the tests reach both).
void set_graph_enabled(bool enabled);
bool graph_enabled();
// Whether every cuDNN call prefers deterministic engines (off by default:
// forward and input-gradient calls then run the fastest engine, as torch's
// cudnn.deterministic = False does; weight gradients prefer deterministic
// engines either way: cuda_plan::deterministic_engines).
void set_deterministic(bool enabled);
bool deterministic();
// How many graph-API execution plans the process has built (each kept for
// its problem value), and how many of them on an engine cuDNN notes as
// nondeterministic: tests see which API ran and what set_deterministic did.
void note_graph_plan(bool nondeterministic);
std::int64_t graph_plans_built();
std::int64_t nondeterministic_plans_built();

// The process's cuDNN functions, opened at the first call; throws
// std::invalid_argument(missing_message(op, ...)) when it cannot be.
const Api& api(const char* op);

// "" when the library at `handle` has every function of Api (filled in) and
// is cuDNN 9 or newer; else what is missing.
std::string resolve(void* handle, Api& api);

}  // namespace volconv::cudnn
