// volconv._core: the nanobind module. Conversions between Python and the C++
// API (array views, with the checks only a Python object needs: dimensions,
// element size, where its memory lives) and the results' allocation live
// here; argument parsing is in python/volconv, shape and parameter
// validation and all logic in csrc/core.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <nanobind/stl/vector.h>

#include <atomic>
#include <chrono>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "../core/gpu_fallback.h"
#include "arrays.h"
#include "gil_release.h"
#include "../core/output_blocks.h"
#include "../cpu/conv3d_plan.h"
#include "../cpu/cpu_features.h"
#include "../cpu/openmp_runtime.h"
#include "../cpu/thread_pool.h"
#include "volconv/volconv.h"

namespace nb = nanobind;
using namespace volconv;

void bind_training(nb::module_& m);  // training.cpp
void bind_cuda(nb::module_& m);            // cuda_ops.cpp
void bind_dlpack_cuda(nb::module_& m);     // dlpack_cuda.cpp
void bind_packed_weights(nb::module_& m);  // packed_weights.cpp

using python::StridedArray;
using python::storage_dtype;

namespace {

ConstTensorView view_of(const StridedArray& a, DType dtype, const char* what) {
  return python::view_of(a, dtype, "conv3d", what);
}

// The bias: a 1-D host array.
ConstVectorView vector_view_of(const StridedArray& a, DType dtype, const char* what) {
  if (a.ndim() != 1)
    throw std::invalid_argument(std::string("[conv3d] Expected the ") + what + " to have 1 dimension (C_out,) but got " +
                                std::to_string(a.ndim()) + ".");
  if (a.device_type() != nb::device::cpu::value)
    throw std::invalid_argument(std::string("[conv3d] Expected the ") + what + " in host memory.");
  if (a.itemsize() != dtype_size(dtype))
    throw std::invalid_argument(std::string("[conv3d] The ") + what + " has " + std::to_string(a.itemsize()) +
                                "-byte elements, but " + dtype_name(dtype) + " needs " +
                                std::to_string(dtype_size(dtype)) + ".");
  return ConstVectorView{a.data(), dtype, std::int64_t(a.shape(0)), std::int64_t(a.stride(0))};
}

// packed: weights packed ahead (volconv/packed_weights.h), used instead of
// weight (None then).
nb::ndarray<nb::numpy> conv3d_py(const StridedArray& input, DType input_dtype,
                                 const std::optional<StridedArray>& weight, DType weight_dtype, ConvParams params,
                                 const std::optional<Stream>& stream, const std::optional<StridedArray>& bias,
                                 DType bias_dtype, Activation activation, const std::optional<StridedArray>& residual,
                                 DType residual_dtype, const PackedConv3dWeights* packed) {
  const ConstTensorView in = view_of(input, input_dtype, "input");
  if (!packed && !weight) throw std::invalid_argument("[conv3d] Expected a weight array or packed weights.");
  if (packed) weight_dtype = packed->weight_dtype();
  const ConstTensorView wt = packed ? packed->weight() : view_of(*weight, weight_dtype, "weight");
  if (bias) params.epilogue.bias = vector_view_of(*bias, bias_dtype, "bias");
  params.epilogue.activation = activation;
  if (residual) params.epilogue.residual = view_of(*residual, residual_dtype, "residual");
  const Shape5 out_shape = conv3d_output_shape(in.shape, wt.shape, params);
  const DType out_dtype = promote_types(input_dtype, weight_dtype);

  const std::size_t out_bytes = std::size_t(numel(out_shape)) * dtype_size(out_dtype);
  void* data = nullptr;
  try {
    data = detail::output_blocks().take(out_bytes);
  } catch (const std::bad_alloc&) {
    // nanobind would say only "std::bad_alloc": name the op and the size.
    PyErr_Format(PyExc_MemoryError,
                 "[conv3d] Could not allocate the output: %zu bytes (%s, shape (%lld,%lld,%lld,%lld,%lld)).",
                 out_bytes, dtype_name(out_dtype), static_cast<long long>(out_shape[0]),
                 static_cast<long long>(out_shape[1]), static_cast<long long>(out_shape[2]),
                 static_cast<long long>(out_shape[3]), static_cast<long long>(out_shape[4]));
    throw nb::python_error();
  }
  nb::capsule owner(data, [](void* p) noexcept { detail::output_blocks().give(p); });

  const TensorView out = TensorView::contiguous(data, out_dtype, out_shape);
  {
    python::GilRelease release;
    if (packed && stream)
      conv3d(in, *packed, out, params, *stream);
    else if (packed)
      conv3d(in, *packed, out, params);  // always the cpu
    else if (stream)
      conv3d(in, wt, out, params, *stream);
    else
      conv3d(in, wt, out, params);  // the default device, which may fall back to the CPU
  }
  std::size_t shape[5];
  for (int i = 0; i < 5; ++i) shape[i] = std::size_t(out_shape[i]);
  return nb::ndarray<nb::numpy>(data, 5, shape, owner, nullptr, storage_dtype(out_dtype));
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "volconv's compiled core (private: use the volconv package).";
  m.attr("__version__") = volconv::version;
  nb::module_::import_("atexit").attr("register")(
      nb::cpp_function([] { python::note_interpreter_exiting(); }));
  // Devices held in module-level Python state (test parameters, user
  // globals) are still alive at interpreter exit; that is not a leak.
  nb::set_leak_warnings(false);
  // volconv's warnings become Python RuntimeWarnings (errors under -W error).
  set_warning_handler([](const char* message) {
    nb::gil_scoped_acquire acquire;
    if (PyErr_WarnEx(PyExc_RuntimeWarning, message, 1) != 0) throw nb::python_error();
  });

  nb::enum_<DType>(m, "DType")
      .value("float16", DType::float16)
      .value("bfloat16", DType::bfloat16)
      .value("float32", DType::float32)
      .value("float64", DType::float64);

  nb::enum_<Activation>(m, "Activation")
      .value("none", Activation::none)
      .value("relu", Activation::relu)
      .value("silu", Activation::silu)
      .value("gelu_tanh", Activation::gelu_tanh);

  nb::enum_<PaddingMode>(m, "PaddingMode")
      .value("zeros", PaddingMode::zeros)
      .value("reflect", PaddingMode::reflect)
      .value("replicate", PaddingMode::replicate)
      .value("circular", PaddingMode::circular);

  nb::enum_<DeviceType>(m, "DeviceType", "The kinds of device: cpu and gpu.")
      .value("cpu", DeviceType::cpu)
      .value("gpu", DeviceType::gpu);

  nb::class_<Device>(m, "Device", "A device conv3d can run on.")
      .def(nb::init<>())
      .def("__init__", [](Device* d, DeviceType type, int index) { new (d) Device{type, index}; },
           nb::arg("type"), nb::arg("index") = 0)
      .def_ro("type", &Device::type)
      .def_ro("index", &Device::index)
      // A Device equals its DeviceType (as in MLX) and nothing but devices.
      .def("__eq__", [](const Device& a, nb::handle b) {
        if (nb::isinstance<Device>(b)) return a == nb::cast<Device>(b);
        if (nb::isinstance<DeviceType>(b)) return a == Device{nb::cast<DeviceType>(b), 0};
        return false;
      }, nb::arg("other").none())
      // Equal objects hash equal: device index 0 hashes as its DeviceType.
      .def("__hash__", [](const Device& d) -> Py_ssize_t {
        return d.index == 0 ? nb::hash(nb::cast(d.type)) : Py_ssize_t(int(d.type) * 1000003 + d.index);
      })
      .def("__repr__", [](const Device& d) {
        return std::string("Device(") + (d.type == DeviceType::cpu ? "cpu" : "gpu") + ", " + std::to_string(d.index) +
               ")";
      });

  nb::class_<Stream>(m, "Stream", "An ordered queue of work on one device.")
      .def_ro("index", &Stream::index)
      .def_ro("device", &Stream::device)
      .def("__eq__", [](const Stream& a, nb::handle b) {
        return nb::isinstance<Stream>(b) && a == nb::cast<Stream>(b);
      }, nb::arg("other").none())
      .def("__hash__", [](const Stream& s) { return s.index; })
      .def("__repr__", [](const Stream& s) {
        return std::string("Stream(Device(") + (s.device.type == DeviceType::cpu ? "cpu" : "gpu") + ", " +
               std::to_string(s.device.index) + "), " + std::to_string(s.index) + ")";
      });

  nb::class_<ConvParams>(m, "ConvParams")
      .def(nb::init<>())
      .def_rw("stride", &ConvParams::stride)
      .def_rw("padding_lo", &ConvParams::padding_lo)
      .def_rw("padding_hi", &ConvParams::padding_hi)
      .def_rw("dilation", &ConvParams::dilation)
      .def_rw("groups", &ConvParams::groups)
      .def_rw("padding_mode", &ConvParams::padding_mode);

  m.def("promote_types", [](DType a, DType b) { return promote_types(a, b); }, nb::arg("a"), nb::arg("b"));
  m.def("is_available", &is_available, nb::arg("device"));
  m.def("unavailable_reason", &unavailable_reason, nb::arg("device"));
  m.def("default_device", &default_device);
  m.def("set_default_device", &set_default_device, nb::arg("device"));
  m.def("default_stream", &default_stream, nb::arg("device"));
  m.def("new_stream", &new_stream, nb::arg("device"));
  m.def("synchronize", [](const Stream& s) {
    python::GilRelease release;
    synchronize(s);
  }, nb::arg("stream"));

  m.def("set_same_padding", [](ConvParams p, const Int3& kernel) {
    set_same_padding(p, kernel);
    return p;
  }, nb::arg("params"), nb::arg("kernel"));
  bind_training(m);
  bind_cuda(m);
  bind_dlpack_cuda(m);
  bind_packed_weights(m);
  m.def("conv3d", &conv3d_py, nb::arg("input"), nb::arg("input_dtype"), nb::arg("weight").none(), nb::arg("weight_dtype"),
        nb::arg("params"), nb::arg("stream").none(), nb::arg("bias") = nb::none(),
        nb::arg("bias_dtype") = DType::float32, nb::arg("activation") = Activation::none,
        nb::arg("residual") = nb::none(), nb::arg("residual_dtype") = DType::float32,
        nb::arg("packed").none() = nb::none());

  // CPU backend: thread count, and private hooks for tests and benchmarks.
  m.def("set_num_threads", &volconv::cpu::set_num_threads, nb::arg("n"),
        "Threads the CPU backend uses; n <= 0 restores the default (CPU affinity or VOLCONV_NUM_THREADS).");
  m.def("get_num_threads", &volconv::cpu::get_num_threads);
  // Sends a message through volconv's warning path (the GPU fallback's),
  // for tests: no GPU is needed to check that it reaches Python.
  m.def("_warn", [](const std::string& message) {
    nb::gil_scoped_release release;  // as conv3d calls it: without the GIL
    detail::warn(message);
  }, nb::arg("message"));
  m.def("_cpu_supported_isas", &volconv::cpu::supported_isas);
  m.def("_cpu_isa", &volconv::cpu::active_isa);
  m.def("_cpu_force_isa", &volconv::cpu::force_isa, nb::arg("name"));
  // Test-only: one thread's FMA GFLOP/s at 512 and 256 bits (zeros without
  // AVX-512), and the tile set they pick (cpu_features.h).
  m.def("_cpu_fma_rates", [] {
    const cpu::FmaRates r = cpu::testing::machine_fma_rates();
    return nb::make_tuple(r.wide_gflops, r.narrow_gflops, cpu::prefers_two_fma_tiles(r));
  });
  // Test-only: the plan the CPU backend would run for this call (no work done).
  m.def("_cpu_plan", [](const StridedArray& input, DType input_dtype, const StridedArray& weight, DType weight_dtype,
                        ConvParams params, bool bias, Activation activation, bool residual) {
    // The planner reads only whether each part of the epilogue is there.
    if (bias) params.epilogue.bias = ConstVectorView{};
    params.epilogue.activation = activation;
    if (residual) params.epilogue.residual = ConstTensorView{};
    const cpu::CpuPlan plan =
        cpu::testing::plan(view_of(input, input_dtype, "input"), view_of(weight, weight_dtype, "weight"), params);
    nb::dict d;
    d["path"] = cpu::path_name(plan.path);
    d["kernel"] = plan.kernel;
    d["name"] = plan.describe();
    d["mr"] = plan.mr;
    d["nr"] = plan.nr;
    d["k_chunks"] = plan.k_chunks;
    d["chunk_taps"] = plan.chunk_taps;
    d["m_outer"] = plan.m_outer;
    d["block_group"] = plan.block_group;
    d["h_block"] = plan.h_block;
    d["row_slots"] = plan.row_slots;
    d["planar_row"] = plan.planar_row;
    d["unit_tiles"] = plan.unit_tiles;
    d["stream"] = plan.stream;
    d["bias"] = plan.bias;
    d["activation"] = activation_name(plan.activation);
    d["residual"] = plan.residual;
    return d;
  }, nb::arg("input"), nb::arg("input_dtype"), nb::arg("weight"), nb::arg("weight_dtype"), nb::arg("params"),
     nb::arg("bias") = false, nb::arg("activation") = Activation::none, nb::arg("residual") = false);
  m.def("_cpu_kernel_names", &cpu::testing::active_kernel_names);
  m.def("_cpu_override_caches", [](std::int64_t l1d, std::int64_t l2, std::int64_t l3) {
    cpu::testing::override_caches({l1d, l2, l3});
  }, nb::arg("l1d"), nb::arg("l2"), nb::arg("l3"), "Test-only: plans use these cache sizes; zeros restore detection.");
  m.def("_cpu_override_cpus", &cpu::testing::override_cpus, nb::arg("cpus"),
        "Test-only: plans take the machine to have this many CPUs; 0 restores detection.");
  m.def("set_cpu_winograd", &cpu::set_winograd, nb::arg("enabled"));
  m.def("cpu_winograd_enabled", &cpu::winograd_enabled);
  m.def("_cpu_cache_sizes", [] {
    const cpu::platform::CacheSizes c = cpu::planning_caches();
    return std::array<std::int64_t, 3>{c.l1d, c.l2, c.l3};
  });
  // Test-only: where the last parallel call ran, and turning the OpenMP route off.
  m.def("_cpu_parallel_route", &cpu::testing::last_parallel_route);
  m.def("_cpu_allow_openmp", &cpu::openmp::testing::allow, nb::arg("allowed"));
  // Test-only: the x86 kernel sets' required and compiled-for features.
  m.def("_cpu_isa_table", [] {
    nb::list out;
    for (const auto& e : cpu::testing::isa_table()) out.append(nb::make_tuple(e.name, e.required, e.compiled));
    return out;
  });
  m.def("_cpu_peak_gflops", [](bool bf16) {
    python::GilRelease release;
    return volconv::cpu::measured_peak_gflops(bf16);
  }, nb::arg("bf16") = false);
}
