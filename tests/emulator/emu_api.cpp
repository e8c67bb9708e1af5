// The emulator's C ABI, loaded by the tests with ctypes: plan a conv3d with
// the real planner, run exactly that plan on the emulated GPU, run the
// self-test kernels. The planning and running functions return 0 on
// success, else 1 with a message in the text buffer.
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <string>

#include "conv3d_plan.h"
#include "emu_runtime.h"
#include "float_convert.h"
#include "self_check.h"
#include "volconv/params.h"

namespace {

using volconv::DType;
using volconv::metal_plan::Conv3dPlan;

// emu_force_64bit_index: plans take the "_large" kernels even where 32-bit
// offsets fit, so the parity tests run those kernels on small problems.
volconv::metal_plan::PlanOptions g_options;

struct Call {
  volconv::ConvGeometry geometry;
  DType dtype;
};

Call make_call(const std::int64_t* in_shape, const std::int64_t* w_shape, const std::int64_t* stride,
               const std::int64_t* pad_lo, const std::int64_t* pad_hi, const std::int64_t* dilation,
               std::int64_t groups, int dtype, const volconv::ConvParams& base = {}) {
  volconv::Shape5 in{}, w{};
  volconv::ConvParams p = base;
  for (int i = 0; i < 5; ++i) {
    in[i] = in_shape[i];
    w[i] = w_shape[i];
  }
  for (int i = 0; i < 3; ++i) {
    p.stride[i] = stride[i];
    p.padding_lo[i] = pad_lo[i];
    p.padding_hi[i] = pad_hi[i];
    p.dilation[i] = dilation[i];
  }
  p.groups = groups;
  return {volconv::make_conv_geometry(in, w, p), DType(dtype)};
}

volconv::metal_plan::DeviceLimits make_limits(const std::int64_t* limits) {
  volconv::metal_plan::DeviceLimits l;
  if (limits) {
    l.max_threadgroup_memory = limits[0];
    l.max_threads_per_threadgroup = limits[1];
    l.simd_width = limits[2];
  }
  return l;
}

int write_text(const std::string& text, char* out, std::int64_t out_len) {
  if (out && out_len > 0) std::snprintf(out, std::size_t(out_len), "%s", text.c_str());
  return std::int64_t(text.size()) < out_len ? 0 : 1;
}

std::string plan_json(const Conv3dPlan& plan, const volconv::ConvGeometry& g) {
  const auto& p = plan.params;
  std::ostringstream s;
  s << "{\"kernel\": \"" << plan.kernel_name << "\", \"family\": \"" << family_name(plan.family)
    << "\", \"template_args\": \"" << plan.template_args << "\", \"bm\": " << plan.bm << ", \"bn\": " << plan.bn
    << ", \"bk\": " << plan.bk << ", \"wm\": " << plan.wm << ", \"wn\": " << plan.wn << ", \"vec\": " << plan.vec
    << ", \"threadgroup\": [" << plan.threadgroup.x << ", " << plan.threadgroup.y << ", " << plan.threadgroup.z
    << "], \"grid\": [" << plan.grid.x << ", " << plan.grid.y << ", " << plan.grid.z
    << "], \"threadgroup_memory\": " << plan.threadgroup_memory_bytes
    << ", \"index_bits\": " << plan.index_bits << ", \"threadgroup_memory_length\": " << volconv::metal_plan::threadgroup_memory_length(plan)
    << ", \"gemm_m\": " << p.gemm_m
    << ", \"gemm_k\": " << p.gemm_k << ", \"c_out_g\": " << p.c_out_g << ", \"groups\": " << p.groups
    << ", \"tiles_n\": " << p.tiles_n << ", \"patch_w\": " << p.patch_w << ", \"out_w\": " << p.out_size[2]
    << ", \"flops\": " << g.flops() << "}";
  return s.str();
}

std::uint64_t elements(const volconv::Shape5& s) {
  std::uint64_t n = 1;
  for (auto v : s) n *= std::uint64_t(v);
  return n;
}

}  // namespace

extern "C" {

int emu_plan_json(const std::int64_t* in_shape, const std::int64_t* w_shape, const std::int64_t* stride,
                  const std::int64_t* pad_lo, const std::int64_t* pad_hi, const std::int64_t* dilation,
                  std::int64_t groups, int dtype, const std::int64_t* limits, char* out, std::int64_t out_len) {
  try {
    const Call c = make_call(in_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, dtype);
    const Conv3dPlan plan = volconv::metal_plan::plan_conv3d(c.geometry, c.dtype, make_limits(limits), g_options);
    return write_text(plan_json(plan, c.geometry), out, out_len);
  } catch (const std::exception& e) {
    write_text(e.what(), out, out_len);
    return 1;
  }
}

// The host's pipeline check (metal_plan::check_pipeline) on the planned
// dispatch, with facts = {max total threads, execution width, static
// threadgroup memory, device max threadgroup memory}: 0 if it passes, else
// 1 with the error message.
int emu_check_pipeline(const std::int64_t* in_shape, const std::int64_t* w_shape, const std::int64_t* stride,
                       const std::int64_t* pad_lo, const std::int64_t* pad_hi, const std::int64_t* dilation,
                       std::int64_t groups, int dtype, const std::uint64_t* facts, char* out, std::int64_t out_len) {
  try {
    const Call c = make_call(in_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, dtype);
    const Conv3dPlan plan = volconv::metal_plan::plan_conv3d(c.geometry, c.dtype, {}, g_options);
    volconv::metal_plan::check_pipeline(plan, {facts[0], facts[1], facts[2], facts[3]});
    write_text("", out, out_len);
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), out, out_len);
    return 1;
  }
}

// Runs the planned dispatch. x, w, y: contiguous arrays of the dtype
// (16-bit types as raw bits). sample_stride: 1 runs the whole grid, s runs
// every s-th threadgroup only (partial output; for the intensity bench).
// counters: bytes read, bytes written, threadgroups run, threadgroups in grid.
int emu_conv3d(const std::int64_t* in_shape, const std::int64_t* w_shape, const std::int64_t* stride,
               const std::int64_t* pad_lo, const std::int64_t* pad_hi, const std::int64_t* dilation,
               std::int64_t groups, int dtype, const void* x, const void* w, void* y, std::uint64_t sample_stride,
               std::uint64_t* counters, char* err, std::int64_t err_len) {
  try {
    const Call c = make_call(in_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, dtype);
    const Conv3dPlan plan = volconv::metal_plan::plan_conv3d(c.geometry, c.dtype, {}, g_options);
    const std::uint64_t esize = volconv::dtype_size(c.dtype);
    volconv::Shape5 in{}, wt{};
    for (int i = 0; i < 5; ++i) {
      in[i] = in_shape[i];
      wt[i] = w_shape[i];
    }
    const emu::BufferSizes sizes{elements(in) * esize, elements(wt) * esize,
                                 elements(c.geometry.output_shape()) * esize};
    const emu::Launch launch{{plan.grid.x, plan.grid.y, plan.grid.z},
                             {plan.threadgroup.x, plan.threadgroup.y, plan.threadgroup.z},
                             plan.threadgroup_memory_bytes, sample_stride};
    const emu::Counters n = emu::dispatch(plan.kernel_name, launch, {x, w, y, &plan.params, nullptr}, sizes);
    if (counters) {
      counters[0] = n.bytes_read;
      counters[1] = n.bytes_written;
      counters[2] = n.threadgroups_run;
      counters[3] = plan.grid.x * plan.grid.y * plan.grid.z;
    }
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), err, err_len);
    return 1;
  }
}

// emu_conv3d with padding modes (pad_mode: 3 volconv::PaddingMode codes)
// and the fused epilogue: activation (volconv::Activation code), bias (C_out
// float32, or null), residual (the output's shape and dtype, contiguous, or
// null). The plan and params come from the real planner, as the host's do.
int emu_conv3d_fused(const std::int64_t* in_shape, const std::int64_t* w_shape, const std::int64_t* stride,
                     const std::int64_t* pad_lo, const std::int64_t* pad_hi, const std::int64_t* dilation,
                     std::int64_t groups, int dtype, const int* pad_mode, int activation, const void* x,
                     const void* w, void* y, const float* bias, const void* residual, char* err,
                     std::int64_t err_len) {
  try {
    volconv::ConvParams base;
    for (int i = 0; i < 3; ++i) base.padding_mode[i] = volconv::PaddingMode(pad_mode[i]);
    base.epilogue.activation = volconv::Activation(activation);
    // The planner only asks whether they are present.
    if (bias) base.epilogue.bias = volconv::ConstVectorView{bias, DType::float32, w_shape[0], 1};
    if (residual) base.epilogue.residual = volconv::ConstTensorView{};
    const Call c = make_call(in_shape, w_shape, stride, pad_lo, pad_hi, dilation, groups, dtype, base);
    const Conv3dPlan plan = volconv::metal_plan::plan_conv3d(c.geometry, c.dtype, {}, g_options);
    const std::uint64_t esize = volconv::dtype_size(c.dtype);
    volconv::Shape5 in{}, wt{};
    for (int i = 0; i < 5; ++i) {
      in[i] = in_shape[i];
      wt[i] = w_shape[i];
    }
    const emu::BufferSizes sizes{elements(in) * esize, elements(wt) * esize,
                                 elements(c.geometry.output_shape()) * esize};
    const emu::Launch launch{{plan.grid.x, plan.grid.y, plan.grid.z},
                             {plan.threadgroup.x, plan.threadgroup.y, plan.threadgroup.z},
                             plan.threadgroup_memory_bytes, 1};
    emu::KernelArgs args{x, w, y, &plan.params, nullptr};
    args.bias = bias;
    args.residual = residual;
    emu::dispatch(plan.kernel_name, launch, args, sizes);
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), err, err_len);
    return 1;
  }
}

// Runs a self-test kernel (lane_probe.metal) on one simdgroup.
int emu_probe(const char* kernel, const float* a, const float* b, float* out, char* err, std::int64_t err_len) {
  try {
    const volconv::Conv3dParams params{};
    emu::dispatch(kernel, emu::Launch{{1, 1, 1}, {32, 1, 1}, 0, 1}, {a, b, out, &params, nullptr},
                  {64 * sizeof(float), 64 * sizeof(float), 64 * sizeof(float)});
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), err, err_len);
    return 1;
  }
}

// Runs any registered kernel as one threadgroup of `threads` threads with
// `threadgroup_memory` bytes (the shim's mutant kernels, tests/emulator/mutants):
// a, b, out are 64 floats each.
int emu_run_kernel(const char* kernel, std::uint64_t threads, std::uint64_t threadgroup_memory, const float* a,
                   const float* b, float* out, char* err, std::int64_t err_len) {
  try {
    const volconv::Conv3dParams params{};
    emu::dispatch(kernel, emu::Launch{{1, 1, 1}, {threads, 1, 1}, threadgroup_memory, 1},
                  {a, b, out, &params, nullptr}, {64 * sizeof(float), 64 * sizeof(float), 64 * sizeof(float)});
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), err, err_len);
    return 1;
  }
}

// 0 if every kernel registered under its own name, else 1 with the error
// (a duplicate host_name).
int emu_registry_error(char* out, std::int64_t out_len) {
  const std::string error = emu::registry_error();
  write_text(error, out, out_len);
  return error.empty() ? 0 : 1;
}

void emu_set_barrier_timeout_ms(std::int64_t milliseconds) { emu::set_barrier_timeout_ms(milliseconds); }

void emu_set_lane_layout(int layout) { emu::set_lane_layout(layout); }

void emu_force_64bit_index(int on) { g_options.force_64bit_index = on != 0; }

// The host's lane-layout self-check, exactly as the Metal host runs it: the
// inputs and the verdict from csrc/metal/portable/self_check, the kernel from
// metal/conv3d_self_check.metal. out: its 192 raw output floats. Returns 0
// when the check passes, else 1 with the reason.
int emu_self_check(float* out, char* reason, std::int64_t reason_len) {
  try {
    using namespace volconv::metal;
    float input[kSelfCheckInputFloats], weight[kSelfCheckInputFloats];
    self_check_inputs(input, weight);
    for (int i = 0; i < kSelfCheckOutputFloats; ++i) out[i] = -1.0f;
    const volconv::Conv3dParams params{};
    emu::dispatch(kSelfCheckKernel, emu::Launch{{1, 1, 1}, {kSelfCheckThreads, 1, 1}, 0, 1},
                  {input, weight, out, &params, nullptr},
                  {sizeof(input), sizeof(weight), kSelfCheckOutputFloats * sizeof(float)});
    const std::string failure = self_check_failure(out);
    write_text(failure, reason, reason_len);
    return failure.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    write_text(e.what(), reason, reason_len);
    return 1;
  }
}

// Newline-separated names: the registered kernels (which = 0) or those the
// planner can choose (which = 1).
int emu_kernel_names(int which, char* out, std::int64_t out_len) {
  std::string text;
  for (const auto& name : which == 0 ? emu::kernel_names() : volconv::metal_plan::plannable_kernel_names())
    text += name + "\n";
  return write_text(text, out, out_len);
}

// float32 -> bfloat16 bits through the emulator's bfloat type (round to
// nearest even), so tests can check the conversion the kernels use.
void emu_float_to_bfloat(const float* in, std::uint16_t* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const metal::bfloat b = metal::bfloat(in[i]);
    std::memcpy(&out[i], &b, 2);
  }
}

}  // extern "C"
