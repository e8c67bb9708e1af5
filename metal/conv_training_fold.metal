// The border fold of conv3d's input gradient under a padding mode: the
// gradient of each padded position (one box of them, computed into the
// scratch buffer by the box's phase dispatches) is added to the input element
// that position read in the forward pass (padded_source's rule, inverted).
// One thread per result element the box reaches, which gathers every box
// position that read it in a fixed order and adds their sum once: no two
// threads write one element and no atomics, so the result is the same on
// every run (the planner orders the boxes).
#include "conv3d_common.h"
#include "conv_training_params.h"

namespace volconv {

// The box positions along one axis that read result index t, as up to three
// runs [first, last) of box-local indices, in ascending order: the low
// padding (coordinates < 0), t itself, the high padding (coordinates >= n).
// Each run is a coordinate range cut to the box [begin, begin + len).
inline void fold_runs(int mode, int n, int t, int begin, int len, thread int (&first)[3], thread int (&last)[3]) {
  const int end = begin + len;
  // Padded coordinates [lo_first, lo_last) < 0 and [hi_first, hi_last) >= n reading t.
  int lo_first = 0, lo_last = 0, hi_first = 0, hi_last = 0;
  if (mode == PadModeCode::REFLECT) {
    lo_first = -t;  // reflect reads -c below 0: only t >= 1 is read (t = 0 gives an empty run)
    lo_last = t > 0 ? -t + 1 : -t;
    hi_first = 2 * (n - 1) - t;  // and 2(n - 1) - c above: only t <= n - 2
    hi_last = t < n - 1 ? hi_first + 1 : hi_first;
  } else if (mode == PadModeCode::REPLICATE) {
    lo_first = begin;  // every coordinate below 0 reads 0
    lo_last = t == 0 ? 0 : begin;
    hi_first = n;  // every coordinate from n on reads n - 1
    hi_last = t == n - 1 ? max(end, n) : n;
  } else if (mode == PadModeCode::CIRCULAR) {
    lo_first = t - n;
    lo_last = t - n + 1;
    hi_first = t + n;
    hi_last = t + n + 1;
  }
  const int from[3] = {lo_first, t, hi_first};
  const int to[3] = {lo_last, t + 1, hi_last};
  VOLCONV_UNROLL
  for (int r = 0; r < 3; ++r) {
    first[r] = max(from[r], begin) - begin;
    last[r] = max(min(to[r], end) - begin, first[r]);
  }
}

}  // namespace volconv

using namespace volconv;

template <typename T, typename I>
[[kernel, max_total_threads_per_threadgroup(TrainingTile::FOLD_THREADS)]] void convtrain_padding_fold(
    const device T* box [[buffer(0)]], const device T* box_again [[buffer(1)]], device T* result [[buffer(2)]],
    const constant PaddingFoldParams& p [[buffer(3)]], threadgroup T* smem VOLCONV_THREADGROUP_MEMORY(0),
    uint3 tgid [[threadgroup_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
    uint simd_gid [[simdgroup_index_in_threadgroup]], uint lane [[thread_index_in_simdgroup]]) {
  const I e = I(tgid.x) * TrainingTile::FOLD_THREADS + I(tid);
  if (e >= I(p.count)) return;
  // e -> (n, t0, t1, t2, c) over batch x the target range x channels.
  const I positions = e / I(p.channels);
  const int c = int(e - positions * I(p.channels));
  int t[3];
  I rest = positions;
  for (int i = 2; i >= 0; --i) {
    const I q = rest / I(p.target_len[i]);
    t[i] = p.target_begin[i] + int(rest - q * I(p.target_len[i]));
    rest = q;
  }
  const int n = int(rest);
  int first[3][3], last[3][3];
  VOLCONV_UNROLL
  for (int i = 0; i < 3; ++i) fold_runs(p.mode[i], p.size[i], t[i], p.box_begin[i], p.box_len[i], first[i], last[i]);
  float sum = 0.0f;
  bool any = false;
  const device T* base = box + I(n) * I(p.box_stride_n) + c;
  for (int r0 = 0; r0 < 3; ++r0)
    for (int j0 = first[0][r0]; j0 < last[0][r0]; ++j0)
      for (int r1 = 0; r1 < 3; ++r1)
        for (int j1 = first[1][r1]; j1 < last[1][r1]; ++j1)
          for (int r2 = 0; r2 < 3; ++r2)
            for (int j2 = first[2][r2]; j2 < last[2][r2]; ++j2) {
              sum += float(base[I(j0) * I(p.box_stride_d) + I(j1) * I(p.box_stride_h) + I(j2) * I(p.channels)]);
              any = true;
            }
  if (!any) return;  // the box reads this element along some axes but not all
  device T* out = result + I(n) * I(p.result_stride_n) + I(t[0]) * I(p.result_stride_d) +
                  I(t[1]) * I(p.result_stride_h) + I(t[2]) * I(p.channels) + c;
  *out = T(float(*out) + sum);
}

#define VOLCONV_INSTANTIATE_PADDING_FOLD(T, IDX)                                                         \
  VOLCONV_INSTANTIATE_KERNEL(VOLCONV_TRAINING_KERNEL_NAME(padding_fold, T, IDX), convtrain_padding_fold, T, \
                             VOLCONV_INDEX_TYPE(IDX))

#if VOLCONV_LIBRARY_HAS(padding_fold, float)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PADDING_FOLD, float)
#endif
#if VOLCONV_LIBRARY_HAS(padding_fold, half)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PADDING_FOLD, half)
#endif
#if VOLCONV_LIBRARY_HAS(padding_fold, bfloat)
VOLCONV_TRAINING_UNTILED_KERNELS(VOLCONV_INSTANTIATE_PADDING_FOLD, bfloat)
#endif
