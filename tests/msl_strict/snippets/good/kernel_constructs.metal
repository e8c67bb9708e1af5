// Known-good MSL: every construct the kernels in metal/ use, as Apple's
// compiler accepts it (MSL 3.1). The strict check must report nothing here.
#include <metal_stdlib>

using namespace metal;

#define TILE_CONST static constant constexpr

namespace demo {

// Static data members in the constant address space (MSL 3.1, Address Spaces (constant)).
template <typename T>
struct Pad {
  TILE_CONST int value = 16 / int(sizeof(T));
};

struct Tile {
  TILE_CONST int THREADS = 64;
};

// An unnamed enum: an integer constant with no storage at all.
enum { kLanes = 32 };

// Parameters shared with the host, bound as a constant reference.
struct Params {
  int64_t rows;
  int32_t size[3];
  int32_t reserved;
};

struct Pos {
  int a, b;
};

inline Pos decode(int64_t m, const constant Params& p) {
  Pos q;
  q.a = int(m / p.size[0]);
  q.b = int(m % p.size[0]);
  return q;
}

inline void coord(ushort lane, thread short& row, thread short& col) {
  row = short(lane / 4);
  col = short((lane % 2) * 2);
}

inline bool in_range(int i, int size) { return uint(i) < uint(size); }

// A helper holding per-thread state in registers; its members are used on a
// thread-space object, so unqualified member functions are fine.
template <typename T, int N>
struct Gather {
  TILE_CONST int ROWS = N;
  int64_t base[ROWS];
  bool valid[ROWS];
  void init(const constant Params& p, uint tid) {
    for (int i = 0; i < ROWS; ++i) {
      base[i] = int64_t(tid) * p.size[1] + i;
      valid[i] = base[i] < p.rows;
    }
  }
  void load(const device T* src, threadgroup T* dst) const {
    for (int i = 0; i < ROWS; ++i) dst[i] = valid[i] ? src[base[i]] : T(0.0f);
  }
};

template <typename T>
inline void load_fragment(thread simdgroup_matrix<float, 8, 8>& f, const threadgroup T* tile, int ld, int row,
                          int col) {
  const threadgroup T* src = tile + row * ld + col;
  f.thread_elements()[0] = float(src[0]);
  f.thread_elements()[1] = float(src[1]);
}

template <int TM>
inline void zero(thread simdgroup_matrix<float, 8, 8> (&acc)[TM]) {
  for (int i = 0; i < TM; ++i) acc[i] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
}

}  // namespace demo

using namespace demo;

template <typename T, int VEC>
[[kernel, max_total_threads_per_threadgroup(64)]] void demo_kernel(
    const device T* input [[buffer(0)]], device T* output [[buffer(1)]], const constant Params& p [[buffer(2)]],
    threadgroup T* smem [[threadgroup(0)]], uint3 tgid [[threadgroup_position_in_grid]],
    uint tid [[thread_index_in_threadgroup]], uint simd_gid [[simdgroup_index_in_threadgroup]],
    uint lane [[thread_index_in_simdgroup]]) {
  constexpr int LD = 8 + Pad<T>::value;
  threadgroup float scratch[Tile::THREADS];  // threadgroup array in the kernel's scope
  Gather<T, 2> gather;
  gather.init(p, tid);
  gather.load(input, smem);
  scratch[tid % Tile::THREADS] = 0.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);

  short fr, fc;
  coord(ushort(lane), fr, fc);
  simdgroup_matrix<float, 8, 8> acc[2];
  zero(acc);
  simdgroup_matrix<float, 8, 8> a, b;
  load_fragment(a, smem, LD, fr, fc);
  load_fragment(b, smem, LD, fc, fr);
#pragma clang loop unroll(full)
  for (int i = 0; i < 2; ++i) simdgroup_multiply_accumulate(acc[i], a, b, acc[i]);

  const int64_t m = int64_t(tgid.x) * 64 + tid;
  const Pos q = decode(m, p);
  if (VEC == 4) {
    const vec<T, 4> x4 = *reinterpret_cast<const device vec<T, 4>*>(input + m * 4);
    float s = 0.0f;
    for (int j = 0; j < 4; ++j) s = fma(float(x4[j]), 2.0f, s);
    output[m] = T(s);
  }
  if (simd_gid == 1) {
    threadgroup float partial[2];  // a threadgroup array in a nested block of the kernel
    partial[lane % 2] = float(input[m]);
    output[m] = T(partial[0]);
  }
  if (in_range(q.a, p.size[0]) && simd_gid == 0) {
    // bfloat/half: explicit conversions in, implicit widening to float out.
    const float v = acc[0].thread_elements()[0] + float(input[m]) + scratch[0];
    output[m] = T(v);
  }
}

template [[host_name("demo_float_v1")]] [[kernel]] decltype(demo_kernel<float, 1>) demo_kernel<float, 1>;
template [[host_name("demo_half_v4")]] [[kernel]] decltype(demo_kernel<half, 4>) demo_kernel<half, 4>;
template [[host_name("demo_bfloat_v4")]] [[kernel]] decltype(demo_kernel<bfloat, 4>) demo_kernel<bfloat, 4>;
// An explicit instantiation spelled over lines, attributes included.
template [[host_name(
    "demo_float_v4")]]
[[kernel]] void demo_kernel<float, 4>(const device float*, device float*, const constant Params&, threadgroup float*,
                                      uint3, uint, uint, uint);
