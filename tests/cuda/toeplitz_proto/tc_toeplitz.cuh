// PROTOTYPE: 16-bit depthwise 3x3x3 forward / input gradient (stride 1,
// pad 1) on tensor cores, each channel's filter row a banded (Toeplitz)
// B of mma.sync m16n8k16 along W. Block = 8 channels (one 16-byte chunk of
// a position) x a 16x16 (H, W) tile, marching along D; warp = channel.
// Input slices: cp.async into a raw [pos][8 ch] buffer, then transposed in
// shared memory into per-channel planes [row][col] (what ldmatrix needs).
// Outputs: per-channel planes, transposed back into 16-byte chunks.
// Non-finite inputs: the band's zeros times inf would be NaN in outputs
// that do not read it, so a block that staged an inf or NaN redoes its
// item with FFMA from global memory.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace tct {
using volconv::cuda::DwArgs;

constexpr int TH = 16, TW = 16, CB = 8, IR = TH + 2, IC = TW + 2, PITCH = 24;
constexpr int PLANE = IR * PITCH, TSLICE = CB * PLANE;
constexpr int CHUNKS = IR * IC, PAIRS = IR * (IC / 2);
constexpr int S = 4, THREADS = 256;
constexpr int OPITCH = 24, OPLANE = TH * OPITCH, OSLICE = CB * OPLANE;
constexpr int SMEM = S * CHUNKS * 16 + 2 * TSLICE * 2 + 2 * OSLICE * 2 + THREADS * 2;
static_assert(CHUNKS <= 2 * THREADS && PAIRS <= THREADS && TH * TW == THREADS, "one pass");

template <class T>
struct Op;
template <>
struct Op<__nv_bfloat16> {
  static constexpr unsigned kExp = 0x7f807f80u, kOne = 0x00800080u;
  static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
  }
  static __device__ __forceinline__ float f(const __nv_bfloat16* p) { return __bfloat162float(*p); }
  static __device__ __forceinline__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
};
template <>
struct Op<__half> {
  static constexpr unsigned kExp = 0x7c007c00u, kOne = 0x04000400u;
  static __device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ unsigned pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&v);
  }
  static __device__ __forceinline__ float f(const __half* p) { return __half2float(*p); }
  static __device__ __forceinline__ void put(__half* p, float v) { *p = __float2half_rn(v); }
};

__device__ __forceinline__ void cp16(void* smem, const void* gmem, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldm4(unsigned (&r)[4], const void* p) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

__device__ unsigned g_fallback_blocks;  // debug: blocks that took the FFMA path

struct Item {
  int n, od0, od1, oh0, ow0;
};

template <class T>
struct Ctx {
  Item t;
  std::int64_t c0, xs1, ys1;
  int in0, pad0;
  // staging: this thread's chunks (k = tid, tid + 256) at depth 0, and whether each is inside H x W
  const T* src[2];
  unsigned inside;
  const T* xn;
  unsigned char* raw;
  T* tp;  // 2 transposed slices
  T* op;  // 2 output slices (planes)
  T* ypos;  // this thread's output chunk at depth 0 (store_out), or nullptr outside the output
};

template <class T>
__device__ __forceinline__ void stage(const Ctx<T>& c, int buf, int id) {
  const bool in_d = id >= 0 && id < c.in0;
  const std::int64_t d = std::int64_t(in_d ? id : 0) * c.xs1;
  unsigned char* dst = c.raw + (buf * CHUNKS + int(threadIdx.x)) * 16;
  cp16(dst, c.src[0] + d, in_d && (c.inside & 1u));
  if (threadIdx.x + THREADS < CHUNKS) cp16(dst + THREADS * 16, c.src[1] + d, in_d && (c.inside & 2u));
}

// raw buffer -> channel planes; returns nonzero if a staged element is inf or NaN.
template <class T>
__device__ __forceinline__ unsigned transpose(const Ctx<T>& c, int rbuf, int tbuf) {
  const int q = threadIdx.x;
  if (q >= PAIRS) return 0;
  const int r = q / (IC / 2), cp = q % (IC / 2);
  const uint4 u = reinterpret_cast<const uint4*>(c.raw)[rbuf * CHUNKS + r * IC + 2 * cp];
  const uint4 v = reinterpret_cast<const uint4*>(c.raw)[rbuf * CHUNKS + r * IC + 2 * cp + 1];
  unsigned nf = 0;
  const unsigned uw[4] = {u.x, u.y, u.z, u.w}, vw[4] = {v.x, v.y, v.z, v.w};
  unsigned* dst = reinterpret_cast<unsigned*>(c.tp + tbuf * TSLICE + r * PITCH + 2 * cp);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    nf |= ((uw[j] & Op<T>::kExp) + Op<T>::kOne) | ((vw[j] & Op<T>::kExp) + Op<T>::kOne);
    dst[(2 * j) * PLANE / 2] = __byte_perm(uw[j], vw[j], 0x5410);
    dst[(2 * j + 1) * PLANE / 2] = __byte_perm(uw[j], vw[j], 0x7632);
  }
  return nf & 0x80008000u;
}

// The output planes of depth od -> 16-byte chunks in global memory.
template <class T>
__device__ __forceinline__ void store_out(const Ctx<T>& c, int obuf, int od) {
  if (od < c.t.od0 || od >= c.t.od1 || c.ypos == nullptr) return;
  const int p = threadIdx.x, h = p / TW, w = p % TW;
  const unsigned short* src = reinterpret_cast<const unsigned short*>(c.op + obuf * OSLICE + h * OPITCH + w);
  unsigned v[CB];
#pragma unroll
  for (int k = 0; k < CB; ++k) v[k] = src[k * OPLANE];
  uint4 q;
  q.x = __byte_perm(v[0], v[1], 0x5410);
  q.y = __byte_perm(v[2], v[3], 0x5410);
  q.z = __byte_perm(v[4], v[5], 0x5410);
  q.w = __byte_perm(v[6], v[7], 0x5410);
  *reinterpret_cast<uint4*>(c.ypos + od * c.ys1) = q;
}

template <int P, class T>
__device__ __forceinline__ void step(const Ctx<T>& c, int s, int steps, const unsigned (&B)[9][2],
                                     float (&acc)[3][2][4], unsigned& nf, unsigned& bad, int skip) {
  if (s >= steps) return;
  const int id0 = c.t.od0 - c.pad0, id = id0 + s;
  wait<S - 3>();
  bad |= unsigned(__syncthreads_or(int(nf)));
  nf = 0;
  if (s + S - 1 < steps) stage(c, (s + S - 1) % S, id0 + s + S - 1);
  commit();
  if (s + 1 < steps && !(skip & 1)) nf = transpose(c, (s + 1) % S, (s + 1) % 2);
  if (s >= 1 && !(skip & 4)) store_out(c, (s - 1) % 2, c.t.od0 + s - 3);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool slice_in = id >= 0 && id < c.in0;
  const T* plane = c.tp + (s % 2) * TSLICE + warp * PLANE;
  const int arow = (lane % 8) + 8 * ((lane / 8) % 2), acol = 8 * (lane / 16);
#pragma unroll
  for (int kh = 0; kh < 3; ++kh) {
    unsigned a0[4], a1[4];
    ldm4(a0, plane + (kh + arow) * PITCH + acol);
    ldm4(a1, plane + (kh + arow) * PITCH + acol + 8);
#pragma unroll
    for (int kd = 0; kd < 3; ++kd) {
      const int od = id + c.pad0 - kd;
      if (!slice_in || od < c.t.od0 || od >= c.t.od1 || (skip & 2)) continue;
      float(&o)[2][4] = acc[(P - kd + 3) % 3];
      Op<T>::mma(o[0], a0, B[kd * 3 + kh][0], B[kd * 3 + kh][1]);
      Op<T>::mma(o[1], a1, B[kd * 3 + kh][0], B[kd * 3 + kh][1]);
    }
  }
  // The depth whose last slice this was: into the output planes.
  float(&done)[2][4] = acc[(P + 1) % 3];
  const int od = id + c.pad0 - 2;
  if (od >= c.t.od0 && od < c.t.od1) {
    const int g = lane / 4, tig = lane % 4;
    unsigned* o = reinterpret_cast<unsigned*>(c.op + (s % 2) * OSLICE + warp * OPLANE);
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      o[(g * OPITCH + 8 * j + 2 * tig) / 2] = Op<T>::pack(done[j][0], done[j][1]);
      o[((g + 8) * OPITCH + 8 * j + 2 * tig) / 2] = Op<T>::pack(done[j][2], done[j][3]);
    }
  }
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) done[j][e] = 0.f;
}

template <class T, int MinBlocks>
__global__ void __launch_bounds__(THREADS, MinBlocks) dw_tc(DwArgs a, int d_seg, int skip) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int w_tiles = (a.out[2] + TW - 1) / TW, h_tiles = (a.out[1] + TH - 1) / TH;
  const int segs = (a.out[0] + d_seg - 1) / d_seg;
  const int cblocks = int(a.channels / CB);
  std::int64_t item = blockIdx.x / cblocks;  // the channel block varies fastest: blocks sharing sectors run together
  Item t;
  t.ow0 = int(item % w_tiles) * TW;
  item /= w_tiles;
  t.oh0 = int(item % h_tiles) * TH;
  item /= h_tiles;
  t.od0 = int(item % segs) * d_seg;
  t.od1 = min(t.od0 + d_seg, a.out[0]);
  t.n = int(item / segs);
  const std::int64_t c0 = std::int64_t(blockIdx.x % cblocks) * CB;
  Ctx<T> c;
  c.t = t;
  c.c0 = c0;
  c.xs1 = a.xs[1];
  c.ys1 = a.ys[1];
  c.in0 = a.in[0];
  c.pad0 = a.pad[0];
  {
    const int oh = t.oh0 + int(threadIdx.x) / TW, ow = t.ow0 + int(threadIdx.x) % TW;
    c.ypos = oh < a.out[1] && ow < a.out[2]
                 ? static_cast<T*>(a.y_out) + std::int64_t(t.n) * a.ys[0] + std::int64_t(oh) * a.ys[2] +
                       std::int64_t(ow) * a.ys[3] + c0
                 : nullptr;
  }
  c.xn = static_cast<const T*>(a.x) + std::int64_t(t.n) * a.xs[0];
  c.raw = smem;
  c.tp = reinterpret_cast<T*>(smem + S * CHUNKS * 16);
  c.op = c.tp + 2 * TSLICE;
  c.inside = 0;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int k = i * THREADS + int(threadIdx.x);
    const int r = k / IC, col = k % IC;
    const int ih = t.oh0 - a.pad[1] + r, iw = t.ow0 - a.pad[2] + col;
    const bool in = k < CHUNKS && ih >= 0 && ih < a.in[1] && iw >= 0 && iw < a.in[2];
    c.src[i] = c.xn + (in ? std::int64_t(ih) * a.xs[2] + std::int64_t(iw) * a.xs[3] + c0 : 0);
    c.inside |= unsigned(in) << i;
  }
  // Zero the planes' columns past the staged ones (the second window reads them).
  for (int k = threadIdx.x; k < 2 * CB * IR; k += THREADS) {
    unsigned* p = reinterpret_cast<unsigned*>(c.tp + k * PITCH + IC);
    p[0] = p[1] = p[2] = 0u;
  }
  // The block's 8 x 27 taps (flipped when asked) in shared memory (slots 27..31 zero), then
  // this warp's channel's 9 band fragments: B[k][n] = f[kd][kh][k - n] for 0 <= k - n <= 2.
  unsigned short* wsm = reinterpret_cast<unsigned short*>(c.op + 2 * OSLICE);
  {
    const int ch = threadIdx.x / 32, tap = threadIdx.x % 32;
    unsigned short v = 0;
    if (tap < 27) {
      const int ft = a.flip ? 26 - tap : tap;
      v = reinterpret_cast<const unsigned short*>(a.w)[(c0 + ch) * a.ws[0] + (ft / 9) * a.ws[1] +
                                                       (ft / 3 % 3) * a.ws[2] + (ft % 3) * a.ws[3]];
    }
    wsm[threadIdx.x] = v;
  }
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, tig = lane % 4;
  unsigned B[9][2];
  {
    const unsigned short* wc = wsm + warp * 32;
    int kw[4] = {2 * tig - g, 2 * tig + 1 - g, 2 * tig + 8 - g, 2 * tig + 9 - g};
#pragma unroll
    for (int q = 0; q < 4; ++q) kw[q] = kw[q] >= 0 && kw[q] <= 2 ? kw[q] : -1;
#pragma unroll
    for (int r = 0; r < 9; ++r) {
      unsigned e[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) e[q] = wc[kw[q] >= 0 ? r * 3 + kw[q] : 27];
      B[r][0] = __byte_perm(e[0], e[1], 0x5410);
      B[r][1] = __byte_perm(e[2], e[3], 0x5410);
    }
  }
  float acc[3][2][4];
#pragma unroll
  for (int i = 0; i < 3; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  const int steps = t.od1 - t.od0 + 2, id0 = t.od0 - a.pad[0];
#pragma unroll
  for (int q = 0; q < S - 1; ++q) {
    if (q < steps) stage(c, q, id0 + q);
    commit();
  }
  wait<S - 2>();
  __syncthreads();
  unsigned nf = transpose(c, 0, 0), bad = 0;
  for (int s = 0; s < steps; s += 3) {
    step<0>(c, s, steps, B, acc, nf, bad, skip);
    step<1>(c, s + 1, steps, B, acc, nf, bad, skip);
    step<2>(c, s + 2, steps, B, acc, nf, bad, skip);
  }
  wait<0>();
  bad |= unsigned(__syncthreads_or(int(nf)));
  store_out(c, (steps - 1) % 2, t.od0 + steps - 3);
  if (!bad) return;
  if (threadIdx.x == 0) atomicAdd(&g_fallback_blocks, 1u);
  __syncthreads();
  // FFMA from global memory, every output of the item.
  for (int idx = threadIdx.x; idx < TH * TW * CB; idx += THREADS) {
    const int ch = idx % CB, p = idx / CB, oh = t.oh0 + p / TW, ow = t.ow0 + p % TW;
    if (oh >= a.out[1] || ow >= a.out[2]) continue;
    const T* w = static_cast<const T*>(a.w) + (c0 + ch) * a.ws[0];
    for (int od = t.od0; od < t.od1; ++od) {
      float s = 0.f;
      for (int tap = 0; tap < 27; ++tap) {
        const int kd = tap / 9, kh = tap / 3 % 3, kw = tap % 3;
        const int id = od - a.pad[0] + kd, ih = oh - a.pad[1] + kh, iw = ow - a.pad[2] + kw;
        if (id < 0 || id >= a.in[0] || ih < 0 || ih >= a.in[1] || iw < 0 || iw >= a.in[2]) continue;
        const int ft = a.flip ? 26 - tap : tap;
        s = fmaf(Op<T>::f(c.xn + id * a.xs[1] + std::int64_t(ih) * a.xs[2] + std::int64_t(iw) * a.xs[3] + c0 + ch),
                 Op<T>::f(w + (ft / 9) * a.ws[1] + (ft / 3 % 3) * a.ws[2] + (ft % 3) * a.ws[3]), s);
      }
      Op<T>::put(static_cast<T*>(a.y_out) + std::int64_t(t.n) * a.ys[0] + std::int64_t(od) * a.ys[1] +
                     std::int64_t(oh) * a.ys[2] + std::int64_t(ow) * a.ys[3] + c0 + ch,
                 s);
    }
  }
}

template <class T, int MinBlocks = 2>
void launch(const DwArgs& a, cudaStream_t st, int skip = 0) {
  const int h_tiles = (a.out[1] + TH - 1) / TH, w_tiles = (a.out[2] + TW - 1) / TW;
  const int cblocks = int(a.channels / CB);
  int d_seg = a.out[0];
  auto items = [&](int ds) { return std::int64_t(a.batch) * ((a.out[0] + ds - 1) / ds) * h_tiles * w_tiles; };
  while (items(d_seg) * cblocks < 1024 && d_seg > 4) d_seg = (d_seg + 1) / 2;
  static bool set = false;
  if (!set) {
    cudaFuncSetAttribute(dw_tc<T, MinBlocks>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    set = true;
  }
  dw_tc<T, MinBlocks><<<unsigned(items(d_seg) * cblocks), THREADS, SMEM, st>>>(a, d_seg, skip);
}

}  // namespace tct
