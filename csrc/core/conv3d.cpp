// conv3d's front door: checks the views against the geometry, then hands the
// call to the backend of the stream's device.
#include "volconv/conv3d.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>

#include "backend.h"
#include "format.h"
#include "gpu_backend.h"
#include "gpu_fallback.h"
#include "view_checks.h"
#include "workspace.h"

namespace volconv {
namespace detail {
int gpu_queue_of(const Stream& stream);
bool default_device_is_automatic();
void conv3d_checked(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                    const ConvParams& params, const Stream& stream, const cpu::PrepackedWeights* prepacked);
}

namespace {

using detail::format_tuple;
using detail::byte_range;
using detail::kMaxReach;
using detail::ByteRange;
using detail::with_host_address;
using detail::writes_each_element_once;

[[noreturn]] void fail(const std::string& message) { throw std::invalid_argument("[conv3d] " + message); }

void check_dtype(DType dtype, const char* what) {
  if (dtype != DType::float16 && dtype != DType::bfloat16 && dtype != DType::float32 && dtype != DType::float64)
    fail(std::string("Unknown dtype code ") + std::to_string(int(dtype)) + " for the " + what + ".");
}

void check_data(const void* data, const void* metal_buffer, const Shape5& shape, const char* what) {
  if (data == nullptr && metal_buffer == nullptr && numel(shape) != 0)
    fail(std::string("The ") + what + " has a null data pointer.");
}

void check_strides(const Shape5& shape, const Shape5& strides, const char* what) {
  if (!detail::strides_fit(shape, strides))
    fail(std::string("The strides of the ") + what + " " + format_tuple(strides) + " reach past 2^59 elements.");
}

// The epilogue's operands against the output: shapes, dtypes, strides
// (before any work; overlap with the output is checked with the others).
void check_epilogue(const Epilogue& e, const ConvGeometry& g, const TensorView& output) {
  if (int(e.activation) > int(Activation::gelu_tanh))
    fail("Unknown activation code " + std::to_string(int(e.activation)) + ".");
  if (e.bias) {
    const ConstVectorView& b = *e.bias;
    check_dtype(b.dtype, "bias");
    if (b.size != g.out_channels)
      fail("Expected bias of shape (C_out,) = (" + std::to_string(g.out_channels) + ",) but got (" +
           std::to_string(b.size) + ",).");
    if (b.data == nullptr) fail("The bias has a null data pointer.");
    if (b.stride < -kMaxReach || b.stride > kMaxReach || std::abs(b.stride) > kMaxReach / std::max<std::int64_t>(1, b.size))
      fail("The stride of the bias " + std::to_string(b.stride) + " reaches past 2^59 elements.");
  }
  if (e.residual) {
    const ConstTensorView& r = *e.residual;
    check_dtype(r.dtype, "residual");
    if (r.dtype != output.dtype)
      fail(std::string("Expected the residual dtype to be ") + dtype_name(output.dtype) + " (the output's) but got " +
           dtype_name(r.dtype) + ".");
    if (r.shape != output.shape)
      fail("Expected a residual of the output's shape " + format_tuple(output.shape) + " but got " +
           format_tuple(r.shape) + ".");
    check_data(r.data, r.metal_buffer, r.shape, "residual");
    check_strides(r.shape, r.strides, "residual");
  }
}

}  // namespace

// conv3d's checks and dispatch; prepacked (CPU only) carries weights packed
// ahead (conv3d_packed.cpp), nullptr for a plain call.
void detail::conv3d_checked(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
                            const ConvParams& params, const Stream& stream,
                            const cpu::PrepackedWeights* prepacked) {
  check_dtype(input.dtype, "input");
  check_dtype(weight.dtype, "weight");
  check_dtype(output.dtype, "output");
  ConvGeometry g = make_conv_geometry(input.shape, weight.shape, params);
  const DType expected = promote_types(input.dtype, weight.dtype);
  if (output.dtype != expected)
    fail(std::string("Expected the output dtype to be ") + dtype_name(expected) + " (the promotion of " +
         dtype_name(input.dtype) + " and " + dtype_name(weight.dtype) + ") but got " + dtype_name(output.dtype) +
         ".");
  if (output.shape != g.output_shape())
    fail("Expected an output of shape " + format_tuple(g.output_shape()) + " but got " + format_tuple(output.shape) +
         ".");
  check_data(input.data, input.metal_buffer, input.shape, "input");
  check_data(weight.data, weight.metal_buffer, weight.shape, "weight");
  check_data(output.data, output.metal_buffer, output.shape, "output");
  check_strides(input.shape, input.strides, "input");
  check_strides(weight.shape, weight.strides, "weight");
  check_strides(output.shape, output.strides, "output");
  check_epilogue(params.epilogue, g, output);
  if (numel(output.shape) == 0) return;  // N == 0: nothing to compute
  if (!writes_each_element_once(output.shape, output.strides))
    fail("The output strides " + format_tuple(output.strides) + " make elements of shape " +
         format_tuple(output.shape) + " overlap.");
  const ConstTensorView in = with_host_address(input), wt = with_host_address(weight);
  const TensorView out = with_host_address(output);
  std::optional<ConstTensorView>& residual = g.params.epilogue.residual;
  if (residual) residual = with_host_address(*residual);
  const ConstTensorView no_view{};
  for (const ConstTensorView* v : {&in, &wt, residual ? &*residual : &no_view}) {
    if (numel(v->shape) == 0) continue;
    // Views in the same Metal buffer are compared by offset, host views by
    // address; a host view and a buffer the CPU cannot see cannot overlap.
    const bool same_buffer = v->metal_buffer && v->metal_buffer == out.metal_buffer;
    if (!same_buffer && (v->data == nullptr || out.data == nullptr)) continue;
    const auto base = [&](const void* data, std::int64_t offset) {
      return same_buffer ? reinterpret_cast<const void*>(std::uintptr_t(offset)) : data;
    };
    const ByteRange o = byte_range(base(out.data, out.metal_offset), out.dtype, out.shape, out.strides);
    const ByteRange r = byte_range(base(v->data, v->metal_offset), v->dtype, v->shape, v->strides);
    if (r.lo <= o.hi && o.lo <= r.hi)
      fail(v == &in || v == &wt ? "The output must not overlap the input or the weight."
                                : "The output must not overlap the residual (an in-place residual add is not "
                                  "supported).");
  }

  // The epilogue and the padding modes travel in the params to either
  // backend (the Metal kernels apply them as the CPU does).
  const std::string why = unavailable_reason(stream.device);
  if (!why.empty())
    throw std::invalid_argument(std::string("[conv3d] The ") +
                                (stream.device.type == DeviceType::gpu ? "gpu" : "cpu") +
                                " is not available: " + why + ".");
  if (stream.device.type == DeviceType::cpu) {
    const ConstTensorView out_view = out;
    for (const ConstTensorView* v : {&in, &wt, &out_view, residual ? &*residual : &no_view}) {
      if (v->data == nullptr && numel(v->shape) != 0)
        fail("A view in a Metal buffer the CPU cannot read (private storage, or a build without Metal) "
             "cannot be used on the CPU.");
    }
    detail::naming_allocation_failures("conv3d", [&] { cpu::conv3d(detail::ConvCall{g, in, wt, out}, prepacked); });
  } else {
    detail::naming_allocation_failures(
        "conv3d", [&] { detail::gpu_conv3d(detail::ConvCall{g, in, wt, out}, detail::gpu_queue_of(stream)); });
  }
}

void conv3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
            const ConvParams& params, const Stream& stream) {
  detail::conv3d_checked(input, weight, output, params, stream, nullptr);
}

// No stream: the default device's. A GPU that is only the automatic default
// gives way to the CPU when it cannot run the kernels (gpu_fallback.h).
void conv3d(const ConstTensorView& input, const ConstTensorView& weight, const TensorView& output,
            const ConvParams& params) {
  const Device device = default_device();
  if (device.type != DeviceType::gpu || !detail::default_device_is_automatic()) {
    conv3d(input, weight, output, params, default_stream(device));
    return;
  }
  detail::gpu_fallback().run([&] { conv3d(input, weight, output, params, default_stream(device)); },
                             [&] { conv3d(input, weight, output, params, default_stream(Device{})); });
}

}  // namespace volconv
