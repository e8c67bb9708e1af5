// Bindings of volconv/packed_weights.h: the handle type and the packing
// function (conv3d takes the handle through its `packed` argument); and the
// test hook of the CPU's input relayout (issue 19's other CPU-side item).
#include <nanobind/nanobind.h>
#include <nanobind/stl/array.h>
#include <nanobind/stl/string.h>

#include "arrays.h"
#include "gil_release.h"
#include "../cpu/input_relayout.h"
#include "../cpu/prepacked_weights.h"
#include "volconv/packed_weights.h"

namespace nb = nanobind;
using namespace volconv;

void bind_packed_weights(nb::module_& m) {
  nb::class_<PackedConv3dWeights>(m, "PackedConv3dWeights", "Weights packed once for many conv3d calls (CPU).")
      .def_prop_ro("weight_shape", [](const PackedConv3dWeights& w) { return w.weight_shape(); })
      .def_prop_ro("weight_dtype", &PackedConv3dWeights::weight_dtype)
      .def_prop_ro("input_dtype", &PackedConv3dWeights::input_dtype)
      .def_prop_ro("params", [](const PackedConv3dWeights& w) { return w.params(); })
      .def_prop_ro("isa", [](const PackedConv3dWeights& w) { return w.isa(); })
      .def_prop_ro("packed_bytes", &PackedConv3dWeights::packed_bytes);
  m.def(
      "pack_conv3d_weights",
      [](const python::StridedArray& weight, DType weight_dtype, DType input_dtype, const ConvParams& params) {
        const ConstTensorView w = python::view_of(weight, weight_dtype, "pack_conv3d_weights", "weight");
        python::GilRelease release;
        return pack_conv3d_weights(w, input_dtype, params);
      },
      nb::arg("weight"), nb::arg("weight_dtype"), nb::arg("input_dtype"), nb::arg("params"));
  // Test-only: how many inputs with strided channels the CPU copied (input_relayout.h).
  m.def("_cpu_relayout_count", &volconv::cpu::testing::relayout_count);
  // Test-only: how many igemm-family calls packed their weights themselves.
  m.def("_cpu_call_packing_count", &volconv::cpu::testing::call_packing_count);
}
