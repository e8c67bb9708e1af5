// PROTOTYPE (not used by volconv; run.sh beside it): the 16-bit depthwise
// 3x3x3 forward / input gradient (stride 1, pad 1) on tensor cores, each
// channel's filter row (kd, kh) a banded (Toeplitz) B of mma.sync m16n8k16
// along W: B[k][n] = f[kd][kh][k - n] for 0 <= k - n <= 2, so 3 of its 16
// products are useful. Block = 16 channels (one 32-byte sector of a
// position) x a 16x8 (H, W) tile, marching along D; warp = 2 channels
// (w, w + 8), A = 16 output rows x 16 input columns by ldmatrix. Input
// slices: cp.async into a raw [pos][16 ch] buffer, then transposed in
// shared memory into per-channel planes [row][col] (what ldmatrix needs);
// outputs: per-channel planes, transposed back into 16-byte chunks.
// Non-finite inputs: the band's zeros times inf would be NaN in outputs that
// do not read it, so a block that staged an inf or NaN redoes its item with
// FFMA from global memory. (An earlier form with 8-channel blocks and 16x16
// tiles, git b647212, wrote half sectors and was slower: README.)
#pragma once
#include <cstdint>

#include "tc_common.cuh"

namespace tct {
using volconv::cuda::DwArgs;

constexpr int TH = 16, TW = 8, CB = 16, IR = TH + 2, IC = TW + 2, PITCH = 24;
constexpr int PLANE = IR * PITCH, TSLICE = CB * PLANE;
constexpr int POS = IR * IC, CHUNKS = 2 * POS, TASKS = 2 * IR * (IC / 2);
constexpr int THREADS = 256;
constexpr int OPITCH = 8, OPLANE = TH * OPITCH, OSLICE = CB * OPLANE;
// Shared memory with S raw slices (S - 1 in flight while one is transposed).
constexpr int smem_bytes(int S) { return S * POS * 32 + 2 * TSLICE * 2 + 2 * OSLICE * 2 + CB * 32 * 2; }
static_assert(CHUNKS <= 2 * THREADS && TASKS <= THREADS && TH * TW * 2 == THREADS, "one pass");

template <class T>
struct Ctx {
  int od0, od1, n, oh0, ow0;
  std::int64_t c0, xs1, ys1;
  int in0, pad0;
  const T* src[2];
  unsigned inside;
  unsigned char* raw;
  T* tp;
  T* op;
  T* ypos;
};

template <class T>
__device__ __forceinline__ void stage(const Ctx<T>& c, int buf, int id) {
  const bool in_d = id >= 0 && id < c.in0;
  const std::int64_t d = std::int64_t(in_d ? id : 0) * c.xs1;
  unsigned char* dst = c.raw + (buf * CHUNKS + int(threadIdx.x)) * 16;
  volconv::cuda::copy16_async(dst, c.src[0] + d, in_d && (c.inside & 1u));
  if (threadIdx.x + THREADS < CHUNKS)
    volconv::cuda::copy16_async(dst + THREADS * 16, c.src[1] + d, in_d && (c.inside & 2u));
}

// Raw [pos][16 ch] -> 16 channel planes; task = (channel half, row, column pair).
template <class T>
__device__ __forceinline__ unsigned transpose(const Ctx<T>& c, int rbuf, int tbuf) {
  const int q = threadIdx.x;
  if (q >= TASKS) return 0;
  const int half = q % 2, pr = q / 2, r = pr / (IC / 2), cp = pr % (IC / 2);
  const uint4* raw = reinterpret_cast<const uint4*>(c.raw) + rbuf * CHUNKS;
  const uint4 u = raw[(r * IC + 2 * cp) * 2 + half], v = raw[(r * IC + 2 * cp + 1) * 2 + half];
  unsigned nf = 0;
  const unsigned uw[4] = {u.x, u.y, u.z, u.w}, vw[4] = {v.x, v.y, v.z, v.w};
  unsigned* dst = reinterpret_cast<unsigned*>(c.tp + tbuf * TSLICE + half * 8 * PLANE + r * PITCH + 2 * cp);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    nf |= ((uw[j] & Op<T>::kExp) + Op<T>::kOne) | ((vw[j] & Op<T>::kExp) + Op<T>::kOne);
    dst[(2 * j) * PLANE / 2] = __byte_perm(uw[j], vw[j], 0x5410);
    dst[(2 * j + 1) * PLANE / 2] = __byte_perm(uw[j], vw[j], 0x7632);
  }
  return nf & 0x80008000u;
}

// Output planes of depth od -> global: thread = (position, channel half).
template <class T>
__device__ __forceinline__ void store_out(const Ctx<T>& c, int obuf, int od) {
  if (od < c.od0 || od >= c.od1 || c.ypos == nullptr) return;
  const int half = threadIdx.x % 2, p = threadIdx.x / 2, h = p / TW, w = p % TW;
  const unsigned short* src =
      reinterpret_cast<const unsigned short*>(c.op + obuf * OSLICE + half * 8 * OPLANE + h * OPITCH + w);
  unsigned v[8];
#pragma unroll
  for (int k = 0; k < 8; ++k) v[k] = src[k * OPLANE];
  uint4 q;
  q.x = __byte_perm(v[0], v[1], 0x5410);
  q.y = __byte_perm(v[2], v[3], 0x5410);
  q.z = __byte_perm(v[4], v[5], 0x5410);
  q.w = __byte_perm(v[6], v[7], 0x5410);
  *reinterpret_cast<uint4*>(c.ypos + od * c.ys1) = q;
}

template <int P, int S, class T>
__device__ __forceinline__ void step(const Ctx<T>& c, int s, int steps, const unsigned (&B)[2][9][2],
                                     float (&acc)[2][3][4], unsigned& nf, unsigned& bad, int skip) {
  if (s >= steps) return;
  const int id0 = c.od0 - c.pad0, id = id0 + s;
  volconv::cuda::copies_wait<S - 3>();
  bad |= unsigned(__syncthreads_or(int(nf)));
  nf = 0;
  if (s + S - 1 < steps) stage(c, (s + S - 1) % S, id0 + s + S - 1);
  volconv::cuda::copies_commit();
  if (s + 1 < steps && !(skip & 1)) nf = transpose(c, (s + 1) % S, (s + 1) % 2);
  if (s >= 1 && !(skip & 4)) store_out(c, (s - 1) % 2, c.od0 + s - 3);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool slice_in = id >= 0 && id < c.in0;
  const int arow = (lane % 8) + 8 * ((lane / 8) % 2), acol = 8 * (lane / 16);
#pragma unroll
  for (int ch = 0; ch < 2; ++ch) {
    const T* plane = c.tp + (s % 2) * TSLICE + (warp + 8 * ch) * PLANE;
#pragma unroll
    for (int kh = 0; kh < 3; ++kh) {
      unsigned a[4];
      ldm4(a, plane + (kh + arow) * PITCH + acol);
#pragma unroll
      for (int kd = 0; kd < 3; ++kd) {
        const int od = id + c.pad0 - kd;
        if (!slice_in || od < c.od0 || od >= c.od1 || (skip & 2)) continue;
        Op<T>::mma(acc[ch][(P - kd + 3) % 3], a, B[ch][kd * 3 + kh][0], B[ch][kd * 3 + kh][1]);
      }
    }
  }
  const int od = id + c.pad0 - 2;
  if (od >= c.od0 && od < c.od1) {
    const int g = lane / 4, tig = lane % 4;
#pragma unroll
    for (int ch = 0; ch < 2; ++ch) {
      const float(&done)[4] = acc[ch][(P + 1) % 3];
      unsigned* o = reinterpret_cast<unsigned*>(c.op + (s % 2) * OSLICE + (warp + 8 * ch) * OPLANE);
      o[(g * OPITCH + 2 * tig) / 2] = Op<T>::pack(done[0], done[1]);
      o[((g + 8) * OPITCH + 2 * tig) / 2] = Op<T>::pack(done[2], done[3]);
    }
  }
#pragma unroll
  for (int ch = 0; ch < 2; ++ch)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[ch][(P + 1) % 3][e] = 0.f;
}

template <class T, int MinBlocks, int S>
__global__ void __launch_bounds__(THREADS, MinBlocks) dw_tc(DwArgs a, int d_seg, int skip) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int w_tiles = (a.out[2] + TW - 1) / TW, h_tiles = (a.out[1] + TH - 1) / TH;
  const int segs = (a.out[0] + d_seg - 1) / d_seg, cblocks = int(a.channels / CB);
  std::int64_t item = blockIdx.x / cblocks;
  Ctx<T> c;
  c.ow0 = int(item % w_tiles) * TW;
  item /= w_tiles;
  c.oh0 = int(item % h_tiles) * TH;
  item /= h_tiles;
  c.od0 = int(item % segs) * d_seg;
  c.od1 = min(c.od0 + d_seg, a.out[0]);
  c.n = int(item / segs);
  c.c0 = std::int64_t(blockIdx.x % cblocks) * CB;
  c.xs1 = a.xs[1];
  c.ys1 = a.ys[1];
  c.in0 = a.in[0];
  c.pad0 = a.pad[0];
  const T* xn = static_cast<const T*>(a.x) + std::int64_t(c.n) * a.xs[0];
  c.raw = smem;
  c.tp = reinterpret_cast<T*>(smem + S * POS * 32);
  c.op = c.tp + 2 * TSLICE;
  c.inside = 0;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int k = i * THREADS + int(threadIdx.x), pos = k / 2, half = k % 2;
    const int r = pos / IC, col = pos % IC;
    const int ih = c.oh0 - a.pad[1] + r, iw = c.ow0 - a.pad[2] + col;
    const bool in = k < CHUNKS && ih >= 0 && ih < a.in[1] && iw >= 0 && iw < a.in[2];
    c.src[i] = xn + (in ? std::int64_t(ih) * a.xs[2] + std::int64_t(iw) * a.xs[3] + c.c0 + 8 * half : 0);
    c.inside |= unsigned(in) << i;
  }
  {
    const int half = threadIdx.x % 2, p = threadIdx.x / 2, oh = c.oh0 + p / TW, ow = c.ow0 + p % TW;
    c.ypos = oh < a.out[1] && ow < a.out[2]
                 ? static_cast<T*>(a.y_out) + std::int64_t(c.n) * a.ys[0] + std::int64_t(oh) * a.ys[2] +
                       std::int64_t(ow) * a.ys[3] + c.c0 + 8 * half
                 : nullptr;
  }
  // Zero the planes' columns past the staged ones (the K window reads 16).
  for (int k = threadIdx.x; k < 2 * CB * IR; k += THREADS) {
    unsigned* p = reinterpret_cast<unsigned*>(c.tp + k * PITCH + IC);
#pragma unroll
    for (int j = 0; j < (PITCH - IC) / 2; ++j) p[j] = 0u;
  }
  unsigned short* wsm = reinterpret_cast<unsigned short*>(c.op + 2 * OSLICE);
  for (int k = threadIdx.x; k < CB * 32; k += THREADS) {
    const int ch = k / 32, tap = k % 32;
    unsigned short v = 0;
    if (tap < 27) {
      const int ft = a.flip ? 26 - tap : tap;
      v = reinterpret_cast<const unsigned short*>(a.w)[(c.c0 + ch) * a.ws[0] + (ft / 9) * a.ws[1] +
                                                       (ft / 3 % 3) * a.ws[2] + (ft % 3) * a.ws[3]];
    }
    wsm[k] = v;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, tig = lane % 4;
  unsigned B[2][9][2];
  {
    int kw[4] = {2 * tig - g, 2 * tig + 1 - g, 2 * tig + 8 - g, 2 * tig + 9 - g};
#pragma unroll
    for (int q = 0; q < 4; ++q) kw[q] = kw[q] >= 0 && kw[q] <= 2 ? kw[q] : -1;
#pragma unroll
    for (int ch = 0; ch < 2; ++ch) {
      const unsigned short* wc = wsm + (warp + 8 * ch) * 32;
#pragma unroll
      for (int r = 0; r < 9; ++r) {
        unsigned e[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) e[q] = wc[kw[q] >= 0 ? r * 3 + kw[q] : 27];
        B[ch][r][0] = __byte_perm(e[0], e[1], 0x5410);
        B[ch][r][1] = __byte_perm(e[2], e[3], 0x5410);
      }
    }
  }
  float acc[2][3][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 3; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  const int steps = c.od1 - c.od0 + 2, id0 = c.od0 - c.pad0;
#pragma unroll
  for (int q = 0; q < S - 1; ++q) {
    if (q < steps) stage(c, q, id0 + q);
    volconv::cuda::copies_commit();
  }
  volconv::cuda::copies_wait<S - 2>();
  __syncthreads();
  unsigned nf = transpose(c, 0, 0), bad = 0;
  for (int s = 0; s < steps; s += 3) {
    step<0, S>(c, s, steps, B, acc, nf, bad, skip);
    step<1, S>(c, s + 1, steps, B, acc, nf, bad, skip);
    step<2, S>(c, s + 2, steps, B, acc, nf, bad, skip);
  }
  volconv::cuda::copies_wait<0>();
  bad |= unsigned(__syncthreads_or(int(nf)));
  store_out(c, (steps - 1) % 2, c.od0 + steps - 3);
  if (!bad) return;
  if (threadIdx.x == 0) atomicAdd(&g_fallback_blocks, 1u);
  __syncthreads();
  for (int idx = threadIdx.x; idx < TH * TW * CB; idx += THREADS) {
    const int ch = idx % CB, p = idx / CB, oh = c.oh0 + p / TW, ow = c.ow0 + p % TW;
    if (oh >= a.out[1] || ow >= a.out[2]) continue;
    const T* w = static_cast<const T*>(a.w) + (c.c0 + ch) * a.ws[0];
    for (int od = c.od0; od < c.od1; ++od) {
      float sum = 0.f;
      for (int tap = 0; tap < 27; ++tap) {
        const int kd = tap / 9, kh = tap / 3 % 3, kw = tap % 3;
        const int id = od - a.pad[0] + kd, ih = oh - a.pad[1] + kh, iw = ow - a.pad[2] + kw;
        if (id < 0 || id >= a.in[0] || ih < 0 || ih >= a.in[1] || iw < 0 || iw >= a.in[2]) continue;
        const int ft = a.flip ? 26 - tap : tap;
        sum = fmaf(Op<T>::f(xn + id * a.xs[1] + std::int64_t(ih) * a.xs[2] + std::int64_t(iw) * a.xs[3] + c.c0 + ch),
                   Op<T>::f(w + (ft / 9) * a.ws[1] + (ft / 3 % 3) * a.ws[2] + (ft % 3) * a.ws[3]), sum);
      }
      Op<T>::put(static_cast<T*>(a.y_out) + std::int64_t(c.n) * a.ys[0] + std::int64_t(od) * a.ys[1] +
                     std::int64_t(oh) * a.ys[2] + std::int64_t(ow) * a.ys[3] + c.c0 + ch,
                 sum);
    }
  }
}

template <class T, int MinBlocks = 3, int S = 4>
void launch(const DwArgs& a, cudaStream_t st, int skip = 0) {
  const int h_tiles = (a.out[1] + TH - 1) / TH, w_tiles = (a.out[2] + TW - 1) / TW;
  const int cblocks = int(a.channels / CB);
  int d_seg = a.out[0];
  auto items = [&](int ds) { return std::int64_t(a.batch) * ((a.out[0] + ds - 1) / ds) * h_tiles * w_tiles; };
  while (items(d_seg) * cblocks < 1024 && d_seg > 4) d_seg = (d_seg + 1) / 2;
  static bool set = false;
  if (!set) {
    cudaFuncSetAttribute(dw_tc<T, MinBlocks, S>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes(S));
    set = true;
  }
  dw_tc<T, MinBlocks, S><<<unsigned(items(d_seg) * cblocks), THREADS, smem_bytes(S), st>>>(a, d_seg, skip);
}

}  // namespace tct
