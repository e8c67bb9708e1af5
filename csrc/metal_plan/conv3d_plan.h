// The GPU planner: a pure function from one conv3d call to the exact Metal
// dispatch that computes it. The Metal host encodes this plan and nothing
// else; the MSL emulator (tests/emulator) executes this plan and nothing
// else, so every plan the host can choose is exercised on Linux.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "conv3d_params.h"  // metal/: the params struct the kernels read
#include "volconv/dtype.h"
#include "volconv/params.h"

namespace volconv::metal_plan {

// What the planner needs to know about the GPU.
struct DeviceLimits {
  std::int64_t max_threadgroup_memory = 32 * 1024;  // bytes
  std::int64_t max_threads_per_threadgroup = 1024;
  std::int64_t simd_width = 32;  // the kernels are written for 32 lanes
};

enum class KernelFamily { gemm, pointwise, small_cin, depthwise };
const char* family_name(KernelFamily family);

struct Size3 {
  std::uint64_t x = 1, y = 1, z = 1;
};

// One dispatch. Buffers: 0 input (N, D, H, W, C_in), 1 weight
// (C_out, KD, KH, KW, C_in / groups), 2 output (N, Do, Ho, Wo, C_out), all
// C-contiguous, of `dtype`, each starting 16-byte aligned; 3 `params`
// (setBytes); 4 the bias as C_out float32 values (params.has_bias), 5 the
// residual, laid out and typed as the output (params.has_residual): any
// buffer when absent, never read; threadgroup memory 0 of
// `threadgroup_memory_bytes`. The padding modes and the epilogue travel in
// the params (make_params, from the geometry's ConvParams).
struct Conv3dPlan {
  std::string kernel_name;    // exactly the [[host_name]] in metal/*.metal
  KernelFamily family = KernelFamily::gemm;
  std::string template_args;  // the instantiation's template arguments, for logs
  DType dtype = DType::float32;
  // Tile: a threadgroup computes bm output positions x bn output channels,
  // stepping K by bk, with wm x wn simdgroups; vec = elements per vector
  // load (4 or 1). Depthwise: bm positions, bn channels, bk = wm = wn = 0.
  int bm = 0, bn = 0, bk = 0, wm = 0, wn = 0, vec = 1;
  int index_bits = 32;  // 64 for the "_large" kernels: some offset passes 2^31 - 1
  Size3 threadgroup;  // threads per threadgroup
  Size3 grid;         // threadgroups per grid (dispatchThreadgroups); x may be 0 when N == 0
  std::uint64_t threadgroup_memory_bytes = 0;
  Conv3dParams params{};
};

// Choices the planner would not make by itself (tests).
struct PlanOptions {
  bool force_64bit_index = false;  // the "_large" kernel even where 32-bit offsets fit
};

// Plans conv3d on a GPU with `limits`. Throws std::invalid_argument (message
// starting "[conv3d]") for what the GPU kernels cannot run: float64, sizes
// past their 32-bit fields, no kernel fitting the limits.
Conv3dPlan plan_conv3d(const ConvGeometry& geometry, DType dtype, const DeviceLimits& limits = {},
                       const PlanOptions& options = {});

// The plan in words, for error messages.
std::string describe(const Conv3dPlan& plan);

// What a compiled pipeline allows, as Metal reports it
// (MTLComputePipelineState and MTLDevice).
struct PipelineFacts {
  std::uint64_t max_total_threads = 0;            // maxTotalThreadsPerThreadgroup
  std::uint64_t execution_width = 0;              // threadExecutionWidth
  std::uint64_t static_threadgroup_memory = 0;    // staticThreadgroupMemoryLength
  std::uint64_t device_max_threadgroup_memory = 0;  // maxThreadgroupMemoryLength
};

// Threadgroup memory lengths must be multiples of 16 bytes: what the host
// passes to setThreadgroupMemoryLength for `plan`.
std::uint64_t threadgroup_memory_length(const Conv3dPlan& plan);

// Throws std::runtime_error ("[volconv] ...") when the pipeline cannot run
// the plan: more threads than it allows, simdgroups other than 32 wide, or
// more threadgroup memory than the device has.
void check_pipeline(const Conv3dPlan& plan, const PipelineFacts& facts);

// Every kernel name plan_conv3d can return (for checking that each one is
// instantiated in metal/*.metal).
std::vector<std::string> plannable_kernel_names();

// One compile of the Metal library: the host compiles the embedded source
// once per unit, on first use, with `defines` prepended, which keeps only
// the instantiations of one kernel family and element type
// (VOLCONV_LIBRARY_HAS in metal/conv3d_params.h). `key` names it in caches
// and messages.
struct LibraryUnit {
  std::string key;
  std::string defines;
};
LibraryUnit library_unit(KernelFamily family, DType dtype);
// The unit holding the lane-layout self-check (metal/conv3d_self_check.metal).
LibraryUnit self_check_library_unit();

}  // namespace volconv::metal_plan
