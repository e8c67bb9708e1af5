// Data problems with input dilation (conv_transpose3d, conv3d's input
// gradient, conv_general) as forward convolutions, one per stride phase, as
// XNNPACK's subconvolution deconvolution: the outputs o = r, r + P, r + 2P...
// of one phase r read only the taps that land on real input elements for
// that r, at a fixed stride, so each phase is a plain forward conv3d (any of
// its fast paths) of the input with that phase's sub-kernel (flipped and
// channel-transposed into a small copy), writing a strided view of the
// output. Phases without such a tap are zeros. No inserted zero is read.
// Phases run one after another, each split over the threads by its own
// driver, or, when there are enough of them to keep every thread busy, all
// at once, one per thread (the planner says which: ProblemPlan::concurrent).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

#include "../core/backend.h"
#include "conv_problem_cpu.h"
#include "../core/workspace.h"
#include "nonfinite_scatter.h"
#include "nonfinite_weights.h"
#include "thread_pool.h"
#include "volconv/cpu.h"

namespace volconv::cpu {
namespace {

using detail::ConvProblem;
using detail::ConvProblemGeometry;

}  // namespace

std::int64_t phase_period(const ConvProblemGeometry& g, int i) {
  return g.input_dilation[i] / std::gcd(g.stride[i], g.input_dilation[i]);
}

DimPhase plan_dim(const ConvProblemGeometry& g, int i, std::int64_t r, std::int64_t P) {
  DimPhase ph;
  const std::int64_t out = g.out[i], K = g.kernel[i], st = g.stride[i], kdil = g.kernel_dilation[i];
  const std::int64_t idil = g.input_dilation[i], in = g.in[i];
  ph.first = r;
  ph.count = r < out ? (out - r + P - 1) / P : 0;
  if (ph.count == 0) return ph;
  const std::int64_t T = idil / std::gcd(kdil, idil);
  const std::int64_t base = r * st - g.padding_lo[i];
  std::int64_t k0 = -1;
  for (std::int64_t k = 0; k < std::min(T, K); ++k) {
    if (((base + k * kdil) % idil + idil) % idil == 0) {
      k0 = k;
      break;
    }
  }
  if (k0 < 0) {
    ph.zero = true;
    return ph;
  }
  ph.tap0 = k0;
  ph.tap_step = T;
  ph.taps = (K - 1 - k0) / T + 1;
  ph.stride = st / std::gcd(st, idil);
  ph.dilation = kdil / std::gcd(kdil, idil);
  const std::int64_t b = (base + k0 * kdil) / idil;  // exact
  const std::int64_t last = b + (ph.count - 1) * ph.stride + (ph.taps - 1) * ph.dilation;
  const std::int64_t begin = std::max<std::int64_t>(b, 0), end = std::min(last + 1, in);
  if (end <= begin) {
    ph.zero = true;
    return ph;
  }
  ph.in_begin = begin;
  ph.in_len = end - begin;
  ph.pad_lo = begin - b;
  ph.pad_hi = last + 1 - end;
  return ph;
}

namespace {

// The sub-kernel of a phase in conv3d's layout (C_out, taps..., C_in/groups),
// in the stored weight's dtype: the logical taps tap0 + tap_step*t, flipped
// and channel-transposed as the problem says; NaN and inf elements read as 0
// when `zero_nonfinite` (add_nonfinite_weight_terms adds them afterwards).
void copy_sub_kernel(const ConvProblem& p, const DimPhase (&ph)[3], bool zero_nonfinite, std::vector<char>& buf,
                     Shape5& shape) {
  const ConvProblemGeometry& g = p.geometry;
  const std::int64_t cog = g.out_channels_per_group(), cig = g.in_channels_per_group();
  const std::int64_t es = std::int64_t(dtype_size(p.weight.dtype));
  shape = {g.out_channels, ph[0].taps, ph[1].taps, ph[2].taps, cig};
  detail::workspace_resize(buf, std::size_t(numel(shape) * es), "a stride phase's sub-kernel");
  const char* w = static_cast<const char*>(p.weight.data);
  const Shape5& ws = p.weight.strides;
  const bool transposed = p.weight_layout == detail::WeightLayout::in_k_out;
  char* dst = buf.data();
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t grp = co / cog, o = co % cog;
    for (std::int64_t a = 0; a < ph[0].taps; ++a)
      for (std::int64_t b = 0; b < ph[1].taps; ++b)
        for (std::int64_t c = 0; c < ph[2].taps; ++c) {
          std::int64_t s[3];
          const std::int64_t t[3] = {a, b, c};
          for (int i = 0; i < 3; ++i) {
            const std::int64_t k = ph[i].tap0 + ph[i].tap_step * t[i];
            s[i] = g.flip ? g.kernel[i] - 1 - k : k;
          }
          const std::int64_t tap_off = s[0] * ws[1] + s[1] * ws[2] + s[2] * ws[3];
          for (std::int64_t ci = 0; ci < cig; ++ci, dst += es) {
            const std::int64_t off =
                transposed ? (grp * cig + ci) * ws[0] + tap_off + o * ws[4] : co * ws[0] + tap_off + ci * ws[4];
            std::memcpy(dst, w + off * es, std::size_t(es));
            if (zero_nonfinite && is_nonfinite(p.weight.dtype, dst)) std::memset(dst, 0, std::size_t(es));
          }
        }
  }
}

// The phases along W can share one call when they read the same input slice
// the same way (e.g. k2 s2) and the output's last two dims are contiguous:
// phase r's channels then sit at offset r * C_out of the merged output view,
// so the sub-kernels stack along C_out (groups 1 only: groups would
// interleave) and the input is read once instead of P times.
bool same_reads(const DimPhase& a, const DimPhase& b) {
  return !a.zero && !b.zero && a.count == b.count && a.taps == b.taps && a.in_begin == b.in_begin &&
         a.in_len == b.in_len && a.pad_lo == b.pad_lo && a.pad_hi == b.pad_hi && a.stride == b.stride &&
         a.dilation == b.dilation;
}

}  // namespace

std::vector<PhaseJob> list_phases(const ConvProblem& p) {
  const ConvProblemGeometry& g = p.geometry;
  std::int64_t P[3];
  for (int i = 0; i < 3; ++i) P[i] = phase_period(g, i);
  const bool may_merge = g.groups == 1 && P[2] > 1 && g.out[2] % P[2] == 0 && p.result.strides[4] == 1 &&
                         p.result.strides[3] == g.out_channels;
  // Multiply-adds of a phase: its outputs x its taps x C_in/group x C_out
  // (a zero phase counts its outputs: a fill).
  const auto work = [&](const PhaseJob& j) {
    const double outs = double(g.batch) * j.ph[0].count * j.ph[1].count * j.ph[2].count * j.merge;
    if (j.ph[0].zero || j.ph[1].zero || j.ph[2].zero) return outs * double(g.out_channels);
    return outs * double(j.ph[0].taps * j.ph[1].taps * j.ph[2].taps) * double(g.in_channels_per_group()) *
           double(g.out_channels);
  };
  std::vector<PhaseJob> jobs;
  for (std::int64_t r0 = 0; r0 < std::min(P[0], g.out[0]); ++r0) {
    const DimPhase d0 = plan_dim(g, 0, r0, P[0]);
    for (std::int64_t r1 = 0; r1 < std::min(P[1], g.out[1]); ++r1) {
      const DimPhase d1 = plan_dim(g, 1, r1, P[1]);
      bool merge = may_merge && !d0.zero && !d1.zero;
      const DimPhase first = plan_dim(g, 2, 0, P[2]);
      for (std::int64_t r2 = 1; r2 < P[2] && merge; ++r2) merge = same_reads(first, plan_dim(g, 2, r2, P[2]));
      if (merge) {
        jobs.push_back(PhaseJob{{r0, r1, 0}, P[2], {d0, d1, first}, 0.0});
        jobs.back().work = work(jobs.back());
        continue;
      }
      for (std::int64_t r2 = 0; r2 < std::min(P[2], g.out[2]); ++r2) {
        jobs.push_back(PhaseJob{{r0, r1, r2}, 1, {d0, d1, plan_dim(g, 2, r2, P[2])}, 0.0});
        jobs.back().work = work(jobs.back());
      }
    }
  }
  return jobs;
}

// Largest first, each to the thread that frees up first (LPT): concurrent
// when that keeps every thread busy for all but ~1/8 of the longest one's
// time; otherwise each phase's own parallel_for splits it over the threads.
bool phases_concurrent(const std::vector<PhaseJob>& jobs, int threads) {
  if (threads < 2 || std::int64_t(jobs.size()) < threads) return false;
  std::vector<double> w;
  double total = 0.0;
  for (const PhaseJob& j : jobs) w.push_back(j.work), total += j.work;
  std::sort(w.begin(), w.end(), std::greater<double>());
  std::vector<double> load(std::size_t(threads), 0.0);
  for (double x : w) *std::min_element(load.begin(), load.end()) += x;
  const double makespan = *std::max_element(load.begin(), load.end());
  return total > 0.0 && makespan <= 1.125 * total / threads;
}

void run_data_problem(const ConvProblem& p, bool concurrent) {
  const ConvProblemGeometry& g = p.geometry;
  std::int64_t P[3];
  for (int i = 0; i < 3; ++i) P[i] = phase_period(g, i);
  const std::int64_t in_es = std::int64_t(dtype_size(p.input.dtype));
  const std::int64_t out_es = std::int64_t(dtype_size(p.result.dtype));
  // Torch's transposed conv and input gradient scatter: a NaN or inf weight
  // meets only real input elements. The phases (forward convs, whose kernels
  // and NaN pass multiply the phase's padding) read such weights as 0; they
  // are added over the real elements at the end.
  const bool scatter_nonfinite = p.zero_taps == detail::ZeroTaps::skipped && any_nonfinite(p.weight);
  // Runs one job (W phases r[2] .. r[2] + merge - 1 stacked along C_out).
  const auto run_job = [&](const PhaseJob& job) {
    const DimPhase(&ph)[3] = job.ph;
    TensorView out = p.result;
    out.data = static_cast<char*>(p.result.data) +
               (job.r[0] * out.strides[1] + job.r[1] * out.strides[2] + job.r[2] * out.strides[3]) * out_es;
    out.shape = {g.batch, ph[0].count, ph[1].count, ph[2].count, g.out_channels * job.merge};
    for (int i = 0; i < 3; ++i) out.strides[i + 1] = p.result.strides[i + 1] * P[i];
    if (ph[0].zero || ph[1].zero || ph[2].zero) {
      fill_zero(out);
      return;
    }
    // The sub-kernel(s): W phases of a merged job stacked along C_out.
    std::vector<char> kernel, sub_kernel;
    Shape5 wshape;
    for (std::int64_t m = 0; m < job.merge; ++m) {
      DimPhase phm[3] = {ph[0], ph[1], job.merge > 1 ? plan_dim(g, 2, m, P[2]) : ph[2]};
      copy_sub_kernel(p, phm, scatter_nonfinite, job.merge > 1 ? sub_kernel : kernel, wshape);
      if (job.merge > 1) kernel.insert(kernel.end(), sub_kernel.begin(), sub_kernel.end());
    }
    wshape[0] *= job.merge;
    ConstTensorView in = p.input;
    in.data = static_cast<const char*>(p.input.data) +
              (ph[0].in_begin * in.strides[1] + ph[1].in_begin * in.strides[2] + ph[2].in_begin * in.strides[3]) *
                  in_es;
    in.shape = {g.batch, ph[0].in_len, ph[1].in_len, ph[2].in_len, g.in_channels};
    const ConstTensorView w = ConstTensorView::contiguous(kernel.data(), p.weight.dtype, wshape);
    ConvParams params;
    for (int i = 0; i < 3; ++i) {
      params.stride[i] = ph[i].stride;
      params.dilation[i] = ph[i].dilation;
      params.padding_lo[i] = ph[i].pad_lo;
      params.padding_hi[i] = ph[i].pad_hi;
    }
    params.groups = g.groups;
    const ConvGeometry fg = make_conv_geometry(in.shape, wshape, params);
    // With zero taps skipped the sub-kernels are finite (non-finite weights
    // read as 0): conv3d's NaN pass would find nothing.
    if (p.zero_taps == detail::ZeroTaps::skipped)
      conv3d_kernels(detail::ConvCall{fg, in, w, out});
    else
      conv3d(detail::ConvCall{fg, in, w, out});
  };
  std::vector<PhaseJob> jobs = list_phases(p);
  if (concurrent) {
    // Each job on one thread (its conv3d's parallel_for, nested, runs on the
    // caller), largest first; a job's result never depends on which thread
    // ran it or on the thread count, so neither does the output.
    std::stable_sort(jobs.begin(), jobs.end(), [](const PhaseJob& a, const PhaseJob& b) { return a.work > b.work; });
    std::atomic<std::size_t> next{0};
    parallel_for(std::int64_t(get_num_threads()), [&](std::int64_t, std::int64_t) {
      for (std::size_t i; (i = next.fetch_add(1)) < jobs.size();) run_job(jobs[i]);
    });
  } else {
    for (const PhaseJob& job : jobs) run_job(job);
  }
  if (scatter_nonfinite) add_nonfinite_weight_terms(p);
}

}  // namespace volconv::cpu
