// The implicit-GEMM drivers: M = output positions, N = C_out per group,
// K = taps x C_in per group; tiles of MR positions x NR channels.
//  - direct: the kernel reads the input in place through an indirection of
//    row pointers (zero row for padding); for f32 inputs, and for bf16 on
//    vdpbf16ps. Work is split over (group, NR block group, M tile), the
//    block group outer (as many NR blocks as fit in L2 together run per M
//    tile on one indirection), so a thread streams its packed weight panels
//    through many tiles; a panel far larger than L2 is walked in chunks of
//    taps over strips of tiles.
//  - packed A: the tile's input rows are gathered (and converted to f32)
//    into a small buffer with taps x C_in folded into K, then every NR block
//    runs on it. For fp16/bf16 inputs without a native kernel, and inputs
//    whose channels are not contiguous.
//  - fold W (f32, groups 1, small C_in, dilation 1 along W): with channels
//    and W contiguous, the KW x C_in values a row reads at one (kd, kh) are
//    one contiguous run, so the direct kernel reads them in place with
//    K = KW * C_in per (kd, kh); only rows whose window crosses the W border
//    copy it (zero-padded) into a small scratch.
//  - small C_in (1-4 per group): tiles run along W inside one output row, and
//    the tile's input is gathered k-major (K = taps x C_in, the MR values of
//    one k side by side), so each k costs one short strided copy and the
//    kernel one broadcast per row.
#include "conv3d_igemm.h"

#include <algorithm>
#include <vector>

#include "../core/element.h"
#include "conv_tile.h"
#include "epilogue.h"
#include "padding_map.h"
#include "thread_pool.h"
#include "weight_packing.h"

namespace volconv::cpu {
namespace {

// A chunked panel (see run_direct_chunked) runs over strips of this many M
// tiles while its chunk of taps sits in L2.
constexpr std::int64_t kStripTiles = 32;
// The direct igemm's M tiles are handed to threads in pieces of at least
// this many (parallel_pieces): a few tens of microseconds of work.
constexpr std::int64_t kMinPieceTiles = 16;

struct Problem {
  const ConvGeometry& g;
  const KernelTable& kt;
  const CpuPlan& plan;
  IgemmKernel k;
  const char* x;
  std::int64_t x_esize;
  Shape5 xs;
  OutputTarget out;
  std::int64_t M, taps, cin, cout, blocks, panel, n_mt;
  const EpilogueRun* epi = nullptr;  // applied to each tile before its store
};

Problem make_problem(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan,
                     const IgemmKernel& k) {
  const ConvGeometry& g = call.geometry;
  Problem p{g, kt, plan, k, static_cast<const char*>(call.input.data), std::int64_t(dtype_size(call.input.dtype)),
            call.input.strides,
            OutputTarget{static_cast<char*>(call.output.data), call.output.dtype,
                         std::int64_t(dtype_size(call.output.dtype)), call.output.strides, plan.stream},
            0, 0, 0, 0, 0, 0, 0};
  p.M = g.batch * g.out[0] * g.out[1] * g.out[2];
  p.taps = g.taps();
  p.cin = g.in_channels_per_group;
  p.cout = g.out_channels_per_group;
  p.blocks = (p.cout + k.nr - 1) / k.nr;
  p.panel = p.taps * p.cin * k.nr;
  p.n_mt = (p.M + k.mr - 1) / k.mr;
  return p;
}

// Locates M tile mt and lists the taps its rows read (a[s * MR + r]: row r's
// input at the s-th listed tap, else the zero row) with each tap's offset in
// the packed panel; returns the number of listed taps. fold_w: a tap is a
// (kd, kh) pair, K per tap the W window x C_in (windows crossing the W
// border are copied into scratch).
std::int64_t index_tile(const Problem& p, bool fold_w, std::int64_t kc, std::int64_t grp, std::int64_t mt,
                        const char* zero, char* scratch, TileRows& rows, const void** a, std::int64_t* tap,
                        std::int64_t* w_off) {
  const int MR = p.k.mr;
  locate_rows(p.g, p.xs, p.out.strides, mt * MR, MR, rows);
  const char* x = p.x + grp * p.cin * p.xs[4] * p.x_esize;
  const std::int64_t ks = fold_w ? build_indirection_fold_w(p.g, p.xs, rows, MR, x, p.x_esize, zero, scratch, a, tap)
                                 : build_indirection(p.g, p.xs, rows, MR, x, p.x_esize, zero, a, tap);
  for (std::int64_t s = 0; s < ks; ++s) w_off[s] = tap[s] * kc * p.k.nr;
  return ks;
}

// Writes the fp32 tile c of NR block blk (group grp) to the output, the
// epilogue applied to it first (in place: the tile is in L1).
void store_block(const Problem& p, const TileRows& rows, std::int64_t grp, std::int64_t blk, float* c) {
  const int NR = p.k.nr, nc = int(std::min<std::int64_t>(NR, p.cout - blk * NR));
  const std::int64_t chan0 = grp * p.cout + blk * NR;
  if (p.epi->active()) p.epi->apply_tile(c, NR, rows, chan0, nc);
  store_output_tile(p.kt, p.out, rows, chan0, c, NR, nc);
}

// Large panels (long K: many taps x wide C_in): every M tile of the plain
// order streams the whole panel (e.g. 1.8 MB for 27 taps x 256 channels x
// 64) from L3, which some CPUs cannot feed at FMA speed (a 16-core Xeon:
// shape e at 119 GFLOP/s on one core, 141 chunked; Zen 4 is unaffected).
// Here a strip of M tiles keeps its indirections and fp32 tiles, and each
// chunk of taps runs over the whole strip while its part of the panel stays
// in L2. The sums run
// in the same order as in one pass (a tile's chunk resumes from its stored
// partial sum), so results are bit-identical to the plain order.
template <class W>
void run_direct_chunked(const Problem& p, const std::vector<W>& packed, bool fold_w, std::int64_t taps,
                        std::int64_t kc, std::int64_t chunk_taps) {
  const int MR = p.k.mr, NR = p.k.nr;
  const std::vector<char> zero(std::size_t(kc * p.x_esize + 64), 0);
  const std::int64_t strips = (p.n_mt + kStripTiles - 1) / kStripTiles, per_tile = taps * MR;
  parallel_for(p.g.groups * p.blocks * strips, [&](std::int64_t begin, std::int64_t end) {
    std::vector<const void*> a(std::size_t(kStripTiles * per_tile));
    std::vector<std::int64_t> tap(std::size_t(kStripTiles * taps)), w_off(tap.size());
    std::vector<std::int64_t> ks(kStripTiles), next(kStripTiles);
    std::vector<char> scratch(fold_w ? std::size_t(kStripTiles * per_tile * kc * p.x_esize) : 0);
    std::vector<float> c(std::size_t(kStripTiles * MR * NR));
    std::vector<TileRows> rows(kStripTiles);
    for (std::int64_t it = begin; it < end; ++it) {
      // it = (grp, blk, strip).
      const std::int64_t strip = it % strips, gb = it / strips, grp = gb / p.blocks, blk = gb % p.blocks;
      const std::int64_t mt0 = strip * kStripTiles, tiles = std::min(kStripTiles, p.n_mt - mt0);
      for (std::int64_t j = 0; j < tiles; ++j) {
        char* tile_scratch = fold_w ? scratch.data() + j * per_tile * kc * p.x_esize : nullptr;
        ks[std::size_t(j)] = index_tile(p, fold_w, kc, grp, mt0 + j, zero.data(), tile_scratch, rows[std::size_t(j)],
                                        a.data() + j * per_tile, tap.data() + j * taps, w_off.data() + j * taps);
        next[std::size_t(j)] = 0;
      }
      const W* panel = packed.data() + (grp * p.blocks + blk) * p.panel;
      for (std::int64_t t0 = 0; t0 < taps; t0 += chunk_taps) {
        const std::int64_t t1 = std::min(taps, t0 + chunk_taps);
        for (std::int64_t j = 0; j < tiles; ++j) {
          // This tile's listed taps in [t0, t1): entries [s0, s1) of its list.
          const std::size_t jt = std::size_t(j * taps);
          const std::int64_t s0 = next[std::size_t(j)];
          std::int64_t s1 = s0;
          while (s1 < ks[std::size_t(j)] && tap[jt + std::size_t(s1)] < t1) ++s1;
          next[std::size_t(j)] = s1;
          // A tile with no taps at all still needs its zeros, once.
          if (s1 == s0 && !(t1 == taps && s0 == 0)) continue;
          p.k.fn(IgemmParams{s1 - s0, kc, a.data() + j * per_tile + s0 * MR, w_off.data() + jt + s0, panel,
                             c.data() + j * MR * NR, s0 > 0});
        }
      }
      for (std::int64_t j = 0; j < tiles; ++j) store_block(p, rows[std::size_t(j)], grp, blk, c.data() + j * MR * NR);
    }
  });
}

// fold_w: a "tap" is a (kd, kh) pair and K per tap is the W window x C_in.
// Work order: each M tile runs a group of consecutive NR blocks on one
// indirection (plan.block_group: all of them when a group's panels fit in L2
// together, as for pointwise and other short-K problems), so the per-tile
// costs (row location, indirection) and each pass over the input serve the
// whole block group; the group is the outer loop, so a thread streams its
// panels through many tiles.
template <class W>
void run_direct(const Problem& p, const std::vector<W>& packed, bool fold_w = false) {
  const int MR = p.k.mr, NR = p.k.nr;
  const std::int64_t KW = p.g.kernel[2];
  const std::int64_t taps = fold_w ? p.taps / KW : p.taps, kc = fold_w ? KW * p.cin : p.cin;
  if (p.plan.k_chunks > 1) return run_direct_chunked(p, packed, fold_w, taps, kc, p.plan.chunk_taps);
  const std::vector<char> zero(std::size_t(kc * p.x_esize + 64), 0);
  const std::int64_t group = std::clamp<std::int64_t>(p.plan.block_group, 1, p.blocks);
  const std::int64_t n_groups = (p.blocks + group - 1) / group;
  parallel_pieces(p.g.groups * n_groups * p.n_mt, kMinPieceTiles, [&](Pieces& pieces) {
    std::vector<const void*> a(std::size_t(taps * MR));
    std::vector<std::int64_t> tap(static_cast<std::size_t>(taps)), w_off(static_cast<std::size_t>(taps));
    std::vector<char> scratch(fold_w ? std::size_t(taps * MR * kc * p.x_esize) : 0);
    std::vector<float> c(std::size_t(MR * NR));
    TileRows rows;
    std::int64_t begin = 0, end = 0;
    while (pieces.next(begin, end))
      for (std::int64_t it = begin; it < end; ++it) {
        // it = (grp, block group, mt).
        const std::int64_t mt = it % p.n_mt, gb = it / p.n_mt, grp = gb / n_groups;
        const std::int64_t blk0 = gb % n_groups * group, blk1 = std::min(p.blocks, blk0 + group);
        const std::int64_t ks = index_tile(p, fold_w, kc, grp, mt, zero.data(), scratch.data(), rows, a.data(),
                                           tap.data(), w_off.data());
        for (std::int64_t blk = blk0; blk < blk1; ++blk) {
          p.k.fn(IgemmParams{ks, kc, a.data(), w_off.data(), packed.data() + (grp * p.blocks + blk) * p.panel,
                             c.data(), 0});
          store_block(p, rows, grp, blk, c.data());
        }
      }
  });
}

// Row r of the tile at taps [t0, t1): K index (t - t0) * cin + ci, as f32.
template <class In>
void gather_rows(const Problem& p, const TileRows& rows, std::int64_t grp, std::int64_t t0, std::int64_t t1,
                 float* abuf) {
  const ConvGeometry& g = p.g;
  const ConvParams& cp = g.params;
  const PaddingMap pad(g);
  const std::int64_t kc = (t1 - t0) * p.cin, KH = g.kernel[1], KW = g.kernel[2];
  const int code = storage_code(In::dtype);
  const bool convert_rows = p.xs[4] == 1 && p.cin >= 8;
  const auto* x = reinterpret_cast<const typename In::storage*>(p.x) + grp * p.cin * p.xs[4];
  for (int r = 0; r < p.k.mr; ++r) {
    float* dst = abuf + r * kc;
    if (r >= rows.valid) {
      std::fill(dst, dst + kc, 0.0f);
      continue;
    }
    // Walk taps t0..t1 with running (kd, kh, kw): no divisions per tap.
    std::int64_t kd = t0 / (KH * KW), kh = (t0 / KW) % KH, kw = t0 % KW;
    for (std::int64_t t = t0; t < t1; ++t, dst += p.cin) {
      const std::int64_t id = pad.source(0, rows.id0[r] + kd * cp.dilation[0]),
                         ih = pad.source(1, rows.ih0[r] + kh * cp.dilation[1]),
                         iw = pad.source(2, rows.iw0[r] + kw * cp.dilation[2]);
      if (++kw == KW) {
        kw = 0;
        if (++kh == KH) kh = 0, ++kd;
      }
      if (id < 0 || ih < 0 || iw < 0) {
        for (std::int64_t ci = 0; ci < p.cin; ++ci) dst[ci] = 0.0f;
        continue;
      }
      const auto* src = x + rows.x_off[r] + id * p.xs[1] + ih * p.xs[2] + iw * p.xs[3];
      if (convert_rows && p.kt.convert_row(dst, src, p.cin, code)) continue;
      for (std::int64_t ci = 0; ci < p.cin; ++ci) dst[ci] = In::template load<float>(load_any(src + ci * p.xs[4]));
    }
  }
}

template <class In>
void run_packed_a(const Problem& p, const std::vector<float>& packed) {
  const int MR = p.k.mr, NR = p.k.nr;
  const std::int64_t chunk = p.plan.chunk_taps;
  parallel_for(p.g.groups * p.n_mt, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> abuf(std::size_t(MR * chunk * p.cin));
    std::vector<float> c(std::size_t(p.blocks * MR * NR));
    const void* arow[kMaxMR];
    TileRows rows;
    for (std::int64_t it = begin; it < end; ++it) {
      const std::int64_t mt = it % p.n_mt, grp = it / p.n_mt;
      locate_rows(p.g, p.xs, p.out.strides, mt * MR, MR, rows);
      for (std::int64_t t0 = 0; t0 < p.taps; t0 += chunk) {
        const std::int64_t t1 = std::min(p.taps, t0 + chunk), kc = (t1 - t0) * p.cin;
        gather_rows<In>(p, rows, grp, t0, t1, abuf.data());
        for (int r = 0; r < MR; ++r) arow[r] = abuf.data() + r * kc;
        const std::int64_t w_off = t0 * p.cin * NR;
        for (std::int64_t blk = 0; blk < p.blocks; ++blk)
          p.k.fn(IgemmParams{1, kc, arow, &w_off, packed.data() + (grp * p.blocks + blk) * p.panel,
                             c.data() + blk * MR * NR, t0 > 0});
      }
      for (std::int64_t blk = 0; blk < p.blocks; ++blk)
        store_block(p, rows, grp, blk, c.data() + blk * MR * NR);
    }
  });
}

// Tiles of MR positions along W of one output row; A gathered k-major.
// dst[ci * MR + r] = src[(r - r_lo) * step + ci * cstride] for r in
// [r_lo, r_hi) (src is row r_lo's address), else 0. CIN > 0 fixes the
// channel count at compile time (the common 1-4).
template <class In, int CIN>
void gather_kmajor(float* dst, const typename In::storage* src, std::int64_t step, std::int64_t cstride,
                   std::int64_t cin_rt, int MR, std::int64_t r_lo, std::int64_t r_hi) {
  const std::int64_t cin = CIN > 0 ? CIN : cin_rt;
  for (std::int64_t ci = 0; ci < cin; ++ci) {
    float* d = dst + ci * MR;
    const auto* s = src + ci * cstride;
    for (std::int64_t r = 0; r < r_lo; ++r) d[r] = 0.0f;
    for (std::int64_t r = r_lo; r < r_hi; ++r) d[r] = In::template load<float>(load_any(s + (r - r_lo) * step));
    for (std::int64_t r = r_hi; r < MR; ++r) d[r] = 0.0f;
  }
}

template <class In, int CIN>
void run_small_cin(const Problem& p, const IgemmKernel& k, const std::vector<float>& packed) {
  const ConvGeometry& g = p.g;
  const ConvParams& cp = g.params;
  const int MR = k.mr, NR = k.nr;
  const std::int64_t Wo = g.out[2], w_tiles = (Wo + MR - 1) / MR, out_rows = g.batch * g.out[0] * g.out[1];
  const std::int64_t chunk = p.plan.chunk_taps;
  const std::int64_t KH = g.kernel[1], KW = g.kernel[2];
  const PaddingMap pad(g);
  const bool w_reads = pad.reads(2);
  parallel_for(g.groups * out_rows * w_tiles, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> panel(std::size_t(MR * chunk * p.cin));
    std::vector<float> c(std::size_t(p.blocks * MR * NR));
    const void* arow[kMaxMR];
    for (int r = 0; r < MR; ++r) arow[r] = panel.data() + r;
    TileRows rows;
    const auto* x0 = reinterpret_cast<const typename In::storage*>(p.x);
    for (std::int64_t it = begin; it < end; ++it) {
      const std::int64_t wt = it % w_tiles, rest = it / w_tiles, row = rest % out_rows, grp = rest / out_rows;
      const std::int64_t ow0 = wt * MR;
      locate_rows(g, p.xs, p.out.strides, row * Wo + ow0, int(std::min<std::int64_t>(MR, Wo - ow0)), rows);
      const auto* x = x0 + rows.x_off[0] + grp * p.cin * p.xs[4];
      for (std::int64_t t0 = 0; t0 < p.taps; t0 += chunk) {
        const std::int64_t t1 = std::min(p.taps, t0 + chunk);
        float* dst = panel.data();
        std::int64_t kd = t0 / (KH * KW), kh = (t0 / KW) % KH, kw = t0 % KW;
        for (std::int64_t t = t0; t < t1; ++t, dst += p.cin * MR) {
          const std::int64_t id = pad.source(0, rows.id0[0] + kd * cp.dilation[0]);
          const std::int64_t ih = pad.source(1, rows.ih0[0] + kh * cp.dilation[1]);
          const std::int64_t iw0 = rows.iw0[0] + kw * cp.dilation[2];
          if (++kw == KW) {
            kw = 0;
            if (++kh == KH) kh = 0, ++kd;
          }
          if (id < 0 || ih < 0) {
            std::fill(dst, dst + p.cin * MR, 0.0f);
            continue;
          }
          // Rows [r_lo, r_hi) read inside the input along W; the rest are zero.
          const std::int64_t sw = cp.stride[2];
          const std::int64_t r_lo = std::min<std::int64_t>(MR, iw0 >= 0 ? 0 : ceil_div_stride(-iw0, sw));
          const std::int64_t r_hi = std::max<std::int64_t>(
              r_lo, std::min<std::int64_t>(rows.valid, g.in[2] > iw0 ? ceil_div_stride(g.in[2] - iw0, sw) : 0));
          // Row r_lo's address: iw0 itself may lie before the row.
          const auto* src = r_hi > r_lo ? x + id * p.xs[1] + ih * p.xs[2] + (iw0 + r_lo * sw) * p.xs[3] : x;
          gather_kmajor<In, CIN>(dst, src, sw * p.xs[3], p.xs[4], p.cin, MR, r_lo, r_hi);
          if (w_reads) {
            // Rows in W padding read the element the mode names.
            const auto* line = x + id * p.xs[1] + ih * p.xs[2];
            for (std::int64_t r = 0; r < rows.valid; ++r) {
              if (r == r_lo) r = std::max(r_lo, r_hi);
              if (r >= rows.valid) break;
              const auto* e = line + pad.source(2, iw0 + r * sw) * p.xs[3];
              for (std::int64_t ci = 0; ci < p.cin; ++ci)
                dst[ci * MR + r] = In::template load<float>(load_any(e + ci * p.xs[4]));
            }
          }
        }
        const std::int64_t w_off = t0 * p.cin * NR;
        for (std::int64_t blk = 0; blk < p.blocks; ++blk)
          k.fn(IgemmParams{1, (t1 - t0) * p.cin, arow, &w_off, packed.data() + (grp * p.blocks + blk) * p.panel,
                           c.data() + blk * MR * NR, t0 > 0});
      }
      for (std::int64_t blk = 0; blk < p.blocks; ++blk)
        store_block(p, rows, grp, blk, c.data() + blk * MR * NR);
    }
  });
}

}  // namespace

void conv3d_igemm(const detail::ConvCall& call, const KernelTable& kt, const CpuPlan& plan,
                  const PrepackedWeights* prepacked) {
  const EpilogueRun epi(call);
  // A panel packed ahead for this plan (same kernel set, NR, layout) is used
  // as it is; otherwise the weights are packed now, as always.
  const bool held = prepacked && prepacked->igemm && prepacked->isa == kt.isa && prepacked->nr == plan.nr &&
                    prepacked->bf16_pairs == plan.bf16_pairs;
  if (!held) count_call_packing();
  if (plan.bf16_pairs) {
    Problem p = make_problem(call, kt, plan, plan.igemm);
    p.epi = &epi;
    std::vector<std::uint16_t> local;
    if (!held) local = pack_igemm_bf16_pairs(p.g, call.weight, plan.nr);
    run_direct(p, held ? prepacked->bf16 : local);
    return;
  }
  // Small-cin runs an f32_gemm kernel (its MR may differ) with the NR and
  // packing of f32_igemm[tile]; p.k is the igemm kernel for blocks/panels.
  Problem p = make_problem(call, kt, plan, kt.f32_igemm[plan.tile]);
  p.epi = &epi;
  std::vector<float> local;
  if (!held) local = pack_igemm_f32(p.g, call.weight, plan.nr);
  const std::vector<float>& packed = held ? prepacked->f32 : local;
  switch (plan.path) {
    case CpuPath::igemm: return run_direct(p, packed);
    case CpuPath::fold_w: return run_direct(p, packed, true);
    case CpuPath::small_cin:
      return visit_dtype(call.input.dtype, [&](auto e) {
        using In = decltype(e);
        switch (p.cin) {
          case 1: return run_small_cin<In, 1>(p, plan.igemm, packed);
          case 2: return run_small_cin<In, 2>(p, plan.igemm, packed);
          case 3: return run_small_cin<In, 3>(p, plan.igemm, packed);
          case 4: return run_small_cin<In, 4>(p, plan.igemm, packed);
          default: return run_small_cin<In, 0>(p, plan.igemm, packed);
        }
      });
    default: return visit_dtype(call.input.dtype, [&](auto e) { run_packed_a<decltype(e)>(p, packed); });
  }
}

}  // namespace volconv::cpu
