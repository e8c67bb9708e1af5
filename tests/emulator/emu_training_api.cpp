// The emulator's C ABI for the training ops: lower a call with the core's
// own lowering (csrc/core/op_geometry.cpp), plan it with the real training
// planner, and run exactly that plan's dispatches in order on the emulated
// GPU, with the float32 partial-sum buffer and the fold boxes' scratch the
// Metal host would allocate.
// Functions return 0 on success, else 1 with a message in the text buffer.
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "conv_training_plan.h"
#include "emu_runtime.h"
#include "op_geometry.h"
#include "volconv/conv_general.h"

namespace {

using namespace volconv;
using metal_plan::TrainingBuffer;
using metal_plan::TrainingPlan;

// The ops, by number (tests/emulator/training_emulator.py: OPS).
enum Op {
  conv_general = 0,
  conv_transpose3d,
  conv3d_grad_input,
  conv_transpose3d_grad_input,
  conv3d_grad_weight,
  conv_transpose3d_grad_weight,
  conv_general_grad_weight,
};
const char* const kOpNames[] = {"conv_general", "conv_transpose3d", "conv3d_grad_input",
                                "conv_transpose3d_grad_input", "conv3d_grad_weight",
                                "conv_transpose3d_grad_weight", "conv_general_grad_weight"};

struct Lowered {
  detail::LoweredGeometry geometry;
  bool weight_grad = false;
  detail::WeightLayout layout = detail::WeightLayout::out_k_in;
  detail::PaddingFold fold;  // conv3d_grad_input's padding modes, as conv_general.cpp sets it
  // The weight gradients' padding rule, as conv_general.cpp sets it (the
  // Metal planner reads it for weight gradients only).
  detail::ZeroTaps zero_taps = detail::ZeroTaps::multiplied;
};

Shape5 shape_of(const std::int64_t* s) { return {s[0], s[1], s[2], s[3], s[4]}; }
Int3 int3_of(const std::int64_t* v) { return {v[0], v[1], v[2]}; }

// params: stride[3], pad_lo[3], pad_hi[3], dilation[3], input_dilation[3],
// output_padding[3], groups, flip, padding_mode[3] (conv3d's gradients). Shapes a, b, c: the op's two arrays in
// argument order, and the shape it is told (input or weight) where it has one.
Lowered lower(int op, const std::int64_t* a, const std::int64_t* b, const std::int64_t* c, const std::int64_t* q) {
  if (op < 0 || op > conv_general_grad_weight) throw std::invalid_argument("emulator: unknown op");
  const char* name = kOpNames[op];
  ConvParams conv;
  conv.stride = int3_of(q);
  conv.padding_lo = int3_of(q + 3);
  conv.padding_hi = int3_of(q + 6);
  conv.dilation = int3_of(q + 9);
  conv.groups = q[18];
  for (int i = 0; i < 3; ++i) conv.padding_mode[i] = PaddingMode(q[20 + i]);
  ConvTransposeParams transpose;
  transpose.stride = conv.stride;
  transpose.padding_lo = conv.padding_lo;
  transpose.padding_hi = conv.padding_hi;
  transpose.dilation = conv.dilation;
  transpose.output_padding = int3_of(q + 15);
  transpose.groups = conv.groups;
  ConvGeneralParams general;
  general.stride = conv.stride;
  general.padding_lo = conv.padding_lo;
  general.padding_hi = conv.padding_hi;
  general.kernel_dilation = conv.dilation;
  general.input_dilation = int3_of(q + 12);
  general.groups = conv.groups;
  general.flip = q[19] != 0;
  Lowered l;
  switch (op) {
    case conv_general: l.geometry = detail::lower_conv_general(name, shape_of(a), shape_of(b), general); break;
    case conv_transpose3d:
      l.geometry = detail::lower_conv_transpose3d(name, shape_of(a), shape_of(b), transpose);
      break;
    case conv3d_grad_input:
      l.geometry = detail::lower_conv3d_grad_input(name, shape_of(a), shape_of(b), shape_of(c), conv);
      l.layout = detail::WeightLayout::in_k_out;
      l.fold = detail::PaddingFold{conv.padding_mode, conv.padding_lo, conv.padding_hi};
      break;
    case conv_transpose3d_grad_input:
      l.geometry = detail::lower_conv_transpose3d_grad_input(name, shape_of(a), shape_of(b), shape_of(c), transpose);
      l.layout = detail::WeightLayout::in_k_out;
      break;
    case conv3d_grad_weight:
      l.geometry = detail::lower_conv3d_grad_weight(name, shape_of(a), shape_of(b), shape_of(c), conv);
      l.weight_grad = true;
      break;
    case conv_transpose3d_grad_weight:
    case conv_general_grad_weight:
      l.geometry = op == conv_general_grad_weight
                       ? detail::lower_conv_general(name, shape_of(a), shape_of(c), general)
                       : detail::lower_conv_transpose3d(name, shape_of(a), shape_of(c), transpose);
      detail::check_grad_output(name, shape_of(b), l.geometry.result_shape);
      l.geometry.result_shape = shape_of(c);
      l.weight_grad = true;
      l.zero_taps = detail::ZeroTaps::skipped;
      break;
  }
  return l;
}

metal_plan::TrainingPlanOptions g_training_options;

TrainingPlan plan_of(int op, const Lowered& l, int dtype, const metal_plan::DeviceLimits& limits) {
  // The ConvProblem the host hands to metal::run_problem (conv_training.mm).
  detail::ConvProblem problem;
  problem.op = l.weight_grad ? detail::ConvOp::weight_grad : detail::ConvOp::data;
  problem.geometry = l.geometry.geometry;
  problem.weight_layout = l.layout;
  problem.fold = l.fold;
  problem.zero_taps = l.zero_taps;
  return metal_plan::plan_problem(kOpNames[op], problem, DType(dtype), limits, g_training_options);
}

int write_text(const std::string& text, char* out, std::int64_t out_len) {
  if (out && out_len > 0) std::snprintf(out, std::size_t(out_len), "%s", text.c_str());
  return std::int64_t(text.size()) < out_len ? 0 : 1;
}

template <class T, std::size_t N>
std::string list(const T (&v)[N]) {
  std::string s = "[";
  for (std::size_t i = 0; i < N; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string plan_json(const TrainingPlan& plan, const Lowered& l) {
  std::ostringstream s;
  const Shape5& r = l.geometry.result_shape;
  s << "{\"index_bits\": " << plan.index_bits << ", \"parts\": " << plan.parts
    << ", \"partials_bytes\": " << plan.partials_bytes << ", \"scratch_bytes\": " << plan.scratch_bytes
    << ", \"fold_boxes\": [";
  for (std::size_t i = 0; i < plan.fold_boxes.size(); ++i)
    s << (i ? ", " : "") << "{\"begin\": " << list(plan.fold_boxes[i].begin)
      << ", \"len\": " << list(plan.fold_boxes[i].len) << "}";
  s << "], \"result_shape\": [" << r[0] << ", " << r[1] << ", "
    << r[2] << ", " << r[3] << ", " << r[4] << "], \"dispatches\": [";
  for (std::size_t i = 0; i < plan.dispatches.size(); ++i) {
    const auto& d = plan.dispatches[i];
    const auto& p = d.params;
    s << (i ? ", " : "") << "{\"kernel\": \"" << d.kernel_name << "\", \"family\": \"" << family_name(d.family)
      << "\", \"buffers\": [\"" << buffer_name(d.buffers[0]) << "\", \"" << buffer_name(d.buffers[1]) << "\", \""
      << buffer_name(d.buffers[2]) << "\"], \"bm\": " << d.bm << ", \"bn\": " << d.bn << ", \"bk\": " << d.bk
      << ", \"threadgroup\": [" << d.threadgroup.x << ", " << d.threadgroup.y << ", " << d.threadgroup.z
      << "], \"grid\": [" << d.grid.x << ", " << d.grid.y << ", " << d.grid.z
      << "], \"threadgroup_memory\": " << d.threadgroup_memory_bytes << ", \"gemm_m\": " << p.gemm_m
      << ", \"phase_k\": " << p.phase_k << ", \"c_in_g\": " << p.c_in_g << ", \"c_out_g\": " << p.c_out_g
      << ", \"c_out\": " << p.c_out << ", \"groups\": " << p.groups << ", \"parts\": " << p.parts
      << ", \"part_len\": " << p.part_len << ", \"weight_elements\": " << p.weight_elements
      << ", \"taps\": " << p.taps << ", \"row_count\": " << list(p.row_count)
      << ", \"out_first\": " << list(p.out_first) << ", \"out_step\": " << list(p.out_step)
      << ", \"phase_taps\": " << list(p.phase_taps) << ", \"fold_count\": " << d.fold.count
      << ", \"target_begin\": " << list(d.fold.target_begin) << ", \"target_len\": " << list(d.fold.target_len)
      << "}";
  }
  s << "]}";
  return s.str();
}

std::uint64_t elements(const Shape5& s) {
  std::uint64_t n = 1;
  for (auto v : s) n *= std::uint64_t(v);
  return n;
}

metal_plan::DeviceLimits make_limits(const std::int64_t* limits) {
  metal_plan::DeviceLimits l;
  if (limits) {
    l.max_threadgroup_memory = limits[0];
    l.max_threads_per_threadgroup = limits[1];
    l.simd_width = limits[2];
  }
  return l;
}

}  // namespace

extern "C" {

// options: force_64bit_index, force_family (-1, 0 gemm, 1 depthwise), force_tile (-1 or an index).
void emu_training_options(const std::int64_t* options) {
  g_training_options.force_64bit_index = options[0] != 0;
  g_training_options.force_family = int(options[1]);
  g_training_options.force_tile = int(options[2]);
}

int emu_training_plan_json(int op, const std::int64_t* a, const std::int64_t* b, const std::int64_t* c,
                           const std::int64_t* params, int dtype, const std::int64_t* limits, char* out,
                           std::int64_t out_len) {
  try {
    const Lowered l = lower(op, a, b, c, params);
    return write_text(plan_json(plan_of(op, l, dtype, make_limits(limits)), l), out, out_len);
  } catch (const std::exception& e) {
    write_text(e.what(), out, out_len);
    return 1;
  }
}

// Runs the plan on contiguous arrays of the dtype (16-bit types as raw bits):
// x, y the op's two arrays in argument order, result of the plan's
// result_shape. The partial sums and the scratch start as NaN, so a partial
// or a box element no kernel writes shows in the result. counters: bytes read, bytes written, threadgroups run,
// dispatches.
int emu_training_run(int op, const std::int64_t* a, const std::int64_t* b, const std::int64_t* c,
                     const std::int64_t* params, int dtype, const void* x, const void* y, void* result,
                     std::uint64_t* counters, char* err, std::int64_t err_len) {
  try {
    const Lowered l = lower(op, a, b, c, params);
    const TrainingPlan plan = plan_of(op, l, dtype, {});
    const std::uint64_t esize = dtype_size(DType(dtype));
    std::vector<float> partials(plan.partials_bytes / 4, std::numeric_limits<float>::quiet_NaN());
    // All-ones bytes: NaN in float, half and bfloat alike.
    std::vector<unsigned char> scratch(plan.scratch_bytes, 0xFF);
    const auto pointer = [&](TrainingBuffer role) -> void* {
      switch (role) {
        case TrainingBuffer::input: return const_cast<void*>(x);
        case TrainingBuffer::weight:
        case TrainingBuffer::output: return const_cast<void*>(y);
        case TrainingBuffer::partials: return partials.data();
        case TrainingBuffer::scratch: return scratch.data();
        case TrainingBuffer::result: return result;
      }
      return nullptr;
    };
    const auto bytes = [&](TrainingBuffer role) -> std::uint64_t {
      switch (role) {
        case TrainingBuffer::input: return elements(shape_of(a)) * esize;
        case TrainingBuffer::weight:
        case TrainingBuffer::output: return elements(shape_of(b)) * esize;
        case TrainingBuffer::partials: return plan.partials_bytes;
        case TrainingBuffer::scratch: return plan.scratch_bytes;
        case TrainingBuffer::result: return elements(l.geometry.result_shape) * esize;
      }
      return 0;
    };
    std::uint64_t totals[3] = {0, 0, 0};
    for (const auto& d : plan.dispatches) {
      const emu::Launch launch{{d.grid.x, d.grid.y, d.grid.z},
                               {d.threadgroup.x, d.threadgroup.y, d.threadgroup.z},
                               metal_plan::threadgroup_memory_length(d), 1};
      const emu::BufferSizes sizes{bytes(d.buffers[0]), bytes(d.buffers[1]), bytes(d.buffers[2])};
      const emu::Counters n = emu::dispatch(
          d.kernel_name, launch,
          {pointer(d.buffers[0]), pointer(d.buffers[1]), pointer(d.buffers[2]),
           d.family == metal_plan::TrainingFamily::padding_fold ? static_cast<const void*>(&d.fold) : &d.params,
           nullptr},
          sizes);
      totals[0] += n.bytes_read;
      totals[1] += n.bytes_written;
      totals[2] += n.threadgroups_run;
    }
    if (counters) {
      counters[0] = totals[0];
      counters[1] = totals[1];
      counters[2] = totals[2];
      counters[3] = plan.dispatches.size();
    }
    return 0;
  } catch (const std::exception& e) {
    write_text(e.what(), err, err_len);
    return 1;
  }
}

// Newline-separated names of every kernel the training planner can choose.
int emu_training_kernel_names(char* out, std::int64_t out_len) {
  std::string text;
  for (const auto& name : metal_plan::plannable_training_kernel_names()) text += name + "\n";
  return write_text(text, out, out_len);
}

}  // extern "C"
