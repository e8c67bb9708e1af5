// Micro-benchmark of the depthwise kernels (no Python, no host work): this
// checkout's kernels against those of a base commit (base.cu), per shape,
// dtype and direction, timed by CUDA events over back-to-back launches, each
// result compared bit for bit with the base's; then the weight gradient with
// its workspace allocated per call from the default pool or volconv's
// scratch pool. Build and run with run.sh (it extracts the base's sources).
//   ./bench          edge shapes (checked once each), then the bench's three shapes
//   ./bench race     the small edge shapes only (for compute-sanitizer racecheck)
//   ./bench profile  the large shape in bfloat16, each kernel once (for ncu)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "../../../csrc/cuda/depthwise_plan.cpp"
#include "../../../csrc/cuda/depthwise_kernels.cuh"
#include "../../../csrc/cuda/streams.cu"
#include "../depthwise_k3_args.h"
#include "../event_timing.h"
#include "common.h"

using namespace volconv;
using cuda::DwArgs;

static double g_bw = 4.22e12;
static int g_reps = 20;
static bool g_once = false;  // profile: each kernel once

float time_ms(const std::function<void()>& f) {
  if (g_once) {
    f();
    CK(cudaDeviceSynchronize());
    return 1.f;
  }
  return median_ms(f, g_reps);
}

template <class T>
float tof(T v) { return float(v); }

template <class T>
std::vector<float> fetch(const void* p, size_t n) {
  std::vector<T> h(n);
  CK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
  std::vector<float> f(n);
  for (size_t i = 0; i < n; ++i) f[i] = tof(h[i]);
  return f;
}

// mismatching elements and the largest |a - b| / (|b| + 1e-3 max|b|)
template <class T>
std::string compare(const void* a, const void* b, size_t n) {
  std::vector<T> ha(n), hb(n);
  CK(cudaMemcpy(ha.data(), a, n * sizeof(T), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hb.data(), b, n * sizeof(T), cudaMemcpyDeviceToHost));
  size_t bad = 0;
  double mx = 0, big = 0;
  for (size_t i = 0; i < n; ++i) big = std::max(big, std::fabs(double(tof(hb[i]))));
  for (size_t i = 0; i < n; ++i) {
    if (memcmp(&ha[i], &hb[i], sizeof(T)) != 0) {
      ++bad;
      const double d = std::fabs(double(tof(ha[i])) - double(tof(hb[i])));
      mx = std::max(mx, d / (std::fabs(double(tof(hb[i]))) + 1e-3 * big));
    }
  }
  char buf[128];
  if (bad == 0) return "bit-identical";
  snprintf(buf, sizeof buf, "DIFF %zu/%zu rel %.2e", bad, n, mx);
  return buf;
}

struct Bufs {
  void *x, *w, *gy, *y_ref, *y, *dw_ref, *dw;
  float* ws;
};

DwArgs data_args(const Prob& p, const Bufs& b, bool flip, void* out) {
  DwArgs a = depthwise_k3_args(p.n, p.d, p.h, p.w, p.c, flip);
  a.x = flip ? b.gy : b.x;
  a.w = b.w;
  a.y_out = out;
  return a;
}

DwArgs wgrad_args(const Prob& p, const Bufs& b, void* out) {
  DwArgs a = data_args(p, b, false, nullptr);
  a.x = b.x;
  a.w = nullptr;
  a.y_in = b.gy;
  a.y_out = nullptr;
  a.w_out = out;
  return a;
}

template <class T>
void run_shape(const Prob& p, int elem, const char* tname, bool only_big) {
  const size_t n = size_t(p.n) * p.d * p.h * p.w * p.c, nw = size_t(p.c) * 27;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<T> hx(n), hg(n), hw(nw);
  for (auto& v : hx) v = T(nd(rng));
  for (auto& v : hg) v = T(nd(rng));
  for (auto& v : hw) v = T(nd(rng));
  Bufs b;
  CK(cudaMalloc(&b.x, n * sizeof(T)));
  CK(cudaMalloc(&b.gy, n * sizeof(T)));
  CK(cudaMalloc(&b.y_ref, n * sizeof(T)));
  CK(cudaMalloc(&b.y, n * sizeof(T)));
  CK(cudaMalloc(&b.w, nw * sizeof(T)));
  CK(cudaMalloc(&b.dw_ref, nw * sizeof(T)));
  CK(cudaMalloc(&b.dw, nw * sizeof(T)));
  CK(cudaMalloc(&b.ws, 64 << 20));
  CK(cudaMemcpy(b.x, hx.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b.gy, hg.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b.w, hw.data(), nw * sizeof(T), cudaMemcpyHostToDevice));
  const detail::ConvProblemGeometry geo = depthwise_k3_geometry(p.n, p.d, p.h, p.w, p.c);
  const int chunk = 16 / int(sizeof(T));
  const double bytes = 2.0 * n * sizeof(T);
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%dx%d", p.n, p.d, p.h, p.w, p.c);
  auto report = [&](const char* dir, const std::string& var, float ms, const std::string& cmp) {
    printf("%-18s %-5s %-5s %-34s %8.4f ms %5.1f%% bw  %s\n", shape, tname, dir, var.c_str(), ms,
           100.0 * bytes / (ms * 1e-3) / g_bw, cmp.c_str());
  };
  cudaStream_t st = 0;
  // forward and flipped (input gradient) data: main's kernel against this branch's
  for (int flip = 0; flip < 2; ++flip) {
    const char* dir = flip ? "dgrad" : "fwd";
    DwArgs ar = data_args(p, b, flip, b.y_ref);
    std::string name;
    const float t_old = time_ms([&] { name = base_run(0, p, elem, &ar, st); });
    report(dir, "base " + name, t_old, "");
    DwArgs av = data_args(p, b, flip, b.y);
    // The kernel the library plans (the pairs kernel where the device makes bulk copies).
    const auto pl = cuda_plan::plan_depthwise(detail::ConvOp::data, geo, false, true, chunk,
                                              cuda::tensor_map_encoder() != nullptr);
    CK(cudaMemset(b.y, 0xff, n * sizeof(T)));
    cuda::launch_typed<T>(pl, av, nullptr, st);
    CK(cudaDeviceSynchronize());
    const std::string cmp = compare<T>(b.y, b.y_ref, n);
    report(dir, "branch " + pl.name(), time_ms([&] { cuda::launch_typed<T>(pl, av, nullptr, st); }), cmp);
  }
  {
    const char* dir = "wgrad";
    DwArgs ar = wgrad_args(p, b, b.dw_ref);
    std::string name;
    const float t_old = time_ms([&] { name = base_run(1, p, elem, &ar, st); });
    report(dir, "base " + name, t_old, "");
    DwArgs av = wgrad_args(p, b, b.dw);
    const auto pl = cuda_plan::plan_depthwise(detail::ConvOp::weight_grad, geo, false, true, chunk);
    CK(cudaMemset(b.dw, 0xff, nw * sizeof(T)));
    cuda::launch_typed<T>(pl, av, b.ws, st);
    CK(cudaDeviceSynchronize());
    const std::string cmp = compare<T>(b.dw, b.dw_ref, nw);
    report(dir, "branch " + pl.name(), time_ms([&] { cuda::launch_typed<T>(pl, av, b.ws, st); }), cmp);
    // The workspace per call as the host does it: the default pool (trimmed
    // at each synchronisation) against volconv's scratch pool.
    if (!g_once) {
      cudaMemPool_t own = cuda::scratch_pool(0);
      report(dir, "branch + cudaMallocAsync default pool", time_ms([&] {
               float* w = nullptr;
               CK(cudaMallocAsync(&w, pl.workspace_bytes, st));
               cuda::launch_typed<T>(pl, av, w, st);
               CK(cudaFreeAsync(w, st));
             }), "");
      report(dir, "branch + scratch pool", time_ms([&] {
               float* w = nullptr;
               CK(cudaMallocFromPoolAsync(&w, pl.workspace_bytes, own, st));
               cuda::launch_typed<T>(pl, av, w, st);
               CK(cudaFreeAsync(w, st));
             }), "");
    }
  }
  cudaFree(b.x), cudaFree(b.gy), cudaFree(b.y_ref), cudaFree(b.y), cudaFree(b.w), cudaFree(b.dw_ref), cudaFree(b.dw),
      cudaFree(b.ws);
}

template <>
float tof<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
float tof<__half>(__half v) { return __half2float(v); }

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool profile = mode == "profile";
  // copy bandwidth
  {
    void *a, *b;
    const size_t bytes = size_t(1) << 30;
    cudaMalloc(&a, bytes);
    cudaMalloc(&b, bytes);
    g_reps = 5;
    const float ms = time_ms([&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); });
    g_bw = 2.0 * bytes / (ms * 1e-3);
    printf("copy bandwidth %.3f TB/s\n", g_bw / 1e12);
    cudaFree(a), cudaFree(b);
    g_reps = 20;
  }
  const Prob shapes[] = {{1, 16, 56, 56, 64}, {1, 17, 128, 128, 256}, {2, 32, 64, 64, 128}};
  if (profile) {
    g_once = true;
    run_shape<__nv_bfloat16>(shapes[1], 1, "bf16", true);
    return 0;
  }
  // Edge shapes (tile and channel overhang, D segments, several items a chunk): checked, each kernel once.
  const Prob edges[] = {{1, 9, 20, 20, 40}, {2, 5, 13, 17, 24}, {1, 3, 264, 264, 32}};
  g_once = true;
  for (const Prob& p : edges) {
    if (mode == "race" && p.h > 100) continue;  // racecheck: the small ones
    run_shape<float>(p, 0, "f32", false);
    run_shape<__nv_bfloat16>(p, 1, "bf16", false);
    run_shape<__half>(p, 2, "f16", false);
  }
  g_once = false;
  if (mode == "race") return 0;
  for (const Prob& p : shapes) {
    run_shape<float>(p, 0, "f32", false);
    run_shape<__nv_bfloat16>(p, 1, "bf16", false);
    run_shape<__half>(p, 2, "f16", false);
  }
  return 0;
}
