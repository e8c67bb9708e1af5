// conv3d's input gradient with a padding mode other than zeros. The input
// gradient of "pad, then conv" is the gradient of the padded input, each
// padded position's value added to the input element it read. The data
// problem as lowered computes the unpadded positions exactly (what zero
// padding computes); here the padded positions (a thin shell around the
// input) are computed box by box with the same problem, cropped to the box
// (a shifted padding_lo and the box's size as the output: any path, no
// padded-size buffer), and scatter-added through the mode's index map.
// Extra memory: one box at a time, the largest N x (shell depth along one
// axis) x (the padded extent of the others) x C_in elements of the result's
// dtype; none when no axis pads with such a mode.
#include <type_traits>
#include <vector>

#include "../core/element.h"
#include "../core/padding_shell.h"
#include "conv_problem_cpu.h"
#include "volconv/cpu.h"
#include "padding_map.h"
#include "thread_pool.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;

using Box = detail::PaddingShellBox;

// result[n, source(box position)] += box values, per batch element in a
// fixed order (bit-identical for any thread count).
template <class E>
void scatter_add(const ConvProblem& p, const Box& b, const typename E::storage* box) {
  using S = typename E::storage;
  using A = std::conditional_t<E::dtype == DType::float64, double, float>;
  const detail::ConvProblemGeometry& g = p.geometry;
  const Shape5& rs = p.result.strides;
  const std::int64_t C = g.out_channels, plane = b.len[0] * b.len[1] * b.len[2];
  std::vector<std::int64_t> src[3];
  for (int i = 0; i < 3; ++i)
    for (std::int64_t j = 0; j < b.len[i]; ++j)
      src[i].push_back(padded_source(p.fold.mode[i], g.out[i], b.begin[i] + j));
  auto* r = static_cast<S*>(p.result.data);
  parallel_for(g.batch, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      const S* v = box + n * plane * C;
      for (std::int64_t d = 0; d < b.len[0]; ++d)
        for (std::int64_t h = 0; h < b.len[1]; ++h)
          for (std::int64_t w = 0; w < b.len[2]; ++w, v += C) {
            S* t = r + n * rs[0] + src[0][std::size_t(d)] * rs[1] + src[1][std::size_t(h)] * rs[2] +
                   src[2][std::size_t(w)] * rs[3];
            for (std::int64_t c = 0; c < C; ++c)
              store_any(t + c * rs[4],
                        E::template store<A>(E::template load<A>(load_any(t + c * rs[4])) + E::template load<A>(v[c])));
          }
    }
  });
}

}  // namespace

void fold_padding(const ConvProblem& p) {
  const detail::ConvProblemGeometry& g = p.geometry;
  const std::int64_t es = std::int64_t(dtype_size(p.result.dtype));
  std::vector<char> buf;
  for (const Box& b : detail::padding_shell_boxes(p.fold, g.out)) {
    // The same problem with the box as its output: out[j] for j = begin + j'.
    ConvProblem q = p;
    q.fold = {};
    for (int i = 0; i < 3; ++i) {
      q.geometry.out[i] = b.len[i];
      q.geometry.padding_lo[i] = g.padding_lo[i] - b.begin[i] * g.stride[i];
    }
    const Shape5 shape{g.batch, b.len[0], b.len[1], b.len[2], g.out_channels};
    buf.resize(std::size_t(numel(shape) * es));
    q.result = TensorView::contiguous(buf.data(), p.result.dtype, shape);
    run_data_problem(q, phases_concurrent(list_phases(q), get_num_threads()));
    visit_dtype(p.result.dtype, [&](auto e) {
      using E = decltype(e);
      scatter_add<E>(p, b, reinterpret_cast<const typename E::storage*>(buf.data()));
    });
  }
}

}  // namespace volconv::cpu
