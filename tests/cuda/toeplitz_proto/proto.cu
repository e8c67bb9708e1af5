// PROTOTYPE driver (run.sh beside it): the banded tensor-core forward /
// input gradient (tc_toeplitz.cuh) against main's FFMA tiled kernel (the
// reference here; the suite tests it against float64) on edge and bench
// shapes, bf16 and fp16: agreement (elements differing, largest relative
// difference), NaN and inf placement with non-finite inputs, blocks that took
// the FFMA redo, and time (CUDA events over back-to-back launches).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../../../csrc/cuda/depthwise_plan.cpp"
#include "../../../csrc/cuda/depthwise_kernels.cuh"
#include "../depthwise_k3_args.h"
#include "../event_timing.h"
#include "tc_toeplitz.cuh"

using namespace volconv;
using cuda::DwArgs;

static double g_bw = 4.2e12;

float time_ms(const std::function<void()>& f, int reps = 20) { return median_ms(f, reps); }

float tof(__nv_bfloat16 v) { return __bfloat162float(v); }
float tof(__half v) { return __half2float(v); }

template <class T>
std::string compare(const void* a, const void* b, size_t n) {
  std::vector<T> ha(n), hb(n);
  CK(cudaMemcpy(ha.data(), a, n * sizeof(T), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hb.data(), b, n * sizeof(T), cudaMemcpyDeviceToHost));
  size_t bad = 0, nan_mismatch = 0, inf_mismatch = 0, nans = 0;
  double mx = 0, big = 0;
  for (size_t i = 0; i < n; ++i) {
    const float v = tof(hb[i]);
    if (std::isfinite(v)) big = std::max(big, double(std::fabs(v)));
  }
  for (size_t i = 0; i < n; ++i) {
    const float x = tof(ha[i]), y = tof(hb[i]);
    nans += std::isnan(y);
    if (std::isnan(x) != std::isnan(y)) {
      ++nan_mismatch;
      continue;
    }
    if (std::isnan(x)) continue;
    if (std::isinf(x) || std::isinf(y)) {
      inf_mismatch += x != y;
      continue;
    }
    if (x != y) {
      ++bad;
      mx = std::max(mx, std::fabs(double(x) - y) / (std::fabs(double(y)) + 1e-3 * big));
    }
  }
  char buf[200];
  snprintf(buf, sizeof buf, "differ %zu/%zu rel %.2e | NaN mismatch %zu (ref NaNs %zu), inf mismatch %zu", bad, n,
           mx, nan_mismatch, nans, inf_mismatch);
  return buf;
}

DwArgs args(int N, int D, int H, int W, int C, const void* x, const void* w, void* y, bool flip) {
  DwArgs a = depthwise_k3_args(N, D, H, W, C, flip);
  a.x = x;
  a.w = w;
  a.y_out = y;
  return a;
}

// Configurations (raw slices in flight + 1, blocks an SM): 2 blocks have 128
// registers a thread, 3 have 80 (and spill a little).
struct Config {
  int stages, blocks;
};

template <class T>
void launch_tc(const DwArgs& a, Config k, int skip = 0) {
  if (k.stages == 6)
    k.blocks == 2 ? tct::launch<T, 2, 6>(a, 0, skip) : tct::launch<T, 3, 6>(a, 0, skip);
  else
    k.blocks == 2 ? tct::launch<T, 2, 4>(a, 0, skip) : tct::launch<T, 3, 4>(a, 0, skip);
}

template <class T>
void run(int N, int D, int H, int W, int C, const char* tname, Config k) {
  const size_t n = size_t(N) * D * H * W * C, nw = size_t(C) * 27;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  std::vector<T> hx(n), hw(nw);
  for (auto& v : hx) v = T(nd(rng));
  for (auto& v : hw) v = T(nd(rng));
  void *x, *w, *y_ref, *y;
  CK(cudaMalloc(&x, n * sizeof(T)));
  CK(cudaMalloc(&w, nw * sizeof(T)));
  CK(cudaMalloc(&y_ref, n * sizeof(T)));
  CK(cudaMalloc(&y, n * sizeof(T)));
  CK(cudaMemcpy(x, hx.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(w, hw.data(), nw * sizeof(T), cudaMemcpyHostToDevice));
  const detail::ConvProblemGeometry geo = depthwise_k3_geometry(N, D, H, W, C);
  const auto pl = cuda_plan::plan_depthwise(detail::ConvOp::data, geo, false, true, 8);
  const double bytes = 2.0 * n * sizeof(T);
  char shape[64];
  snprintf(shape, sizeof shape, "%dx%dx%dx%dx%d", N, D, H, W, C);
  for (int pass = 0; pass < 3; ++pass) {  // 0 forward, 1 input gradient (flip), 2 forward with non-finite inputs
    if (pass == 2) {
      std::vector<T> hb = hx;
      const size_t step = n / 7;
      for (int k = 0; k < 6; ++k) hb[(k + 1) * step + 13 * k] = T(k % 3 == 0 ? INFINITY : k % 3 == 1 ? -INFINITY : NAN);
      CK(cudaMemcpy(x, hb.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    }
    const bool flip = pass == 1;
    DwArgs ar = args(N, D, H, W, C, x, w, y_ref, flip), av = args(N, D, H, W, C, x, w, y, flip);
    cuda::launch_typed<T>(pl, ar, nullptr, 0);
    CK(cudaMemset(y, 0xff, n * sizeof(T)));
    unsigned zero = 0, fb = 0;
    CK(cudaMemcpyToSymbol(tct::g_fallback_blocks, &zero, 4));
    launch_tc<T>(av, k);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpyFromSymbol(&fb, tct::g_fallback_blocks, 4));
    printf("  fallback blocks: %u\n", fb);
    const std::string cmp = compare<T>(y, y_ref, n);
    const char* dir = pass == 0 ? "fwd" : pass == 1 ? "dgrad" : "fwd+inf";
    if (pass == 2) {
      printf("%-18s %-5s %-8s %s\n", shape, tname, dir, cmp.c_str());
      continue;
    }
    const float t_ref = time_ms([&] { cuda::launch_typed<T>(pl, ar, nullptr, 0); });
    const float t_tc = time_ms([&] { launch_tc<T>(av, k); });
    printf("%-18s %-5s %-8s ffma %.4f ms (%4.1f%% bw)  tc %.4f ms (%4.1f%% bw)  %s\n", shape, tname, dir, t_ref,
           100 * bytes / (t_ref * 1e-3) / g_bw, t_tc, 100 * bytes / (t_tc * 1e-3) / g_bw, cmp.c_str());
  }
  cudaFree(x), cudaFree(w), cudaFree(y_ref), cudaFree(y);
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  {
    void *a, *b;
    const size_t bytes = size_t(1) << 30;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    const float ms = time_ms([&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); }, 5);
    g_bw = 2.0 * bytes / (ms * 1e-3);
    printf("copy bandwidth %.3f TB/s\n", g_bw / 1e12);
    cudaFree(a), cudaFree(b);
  }
  if (mode == "profile") {  // for ncu: the large shape in bfloat16
    run<__nv_bfloat16>(1, 17, 128, 128, 256, "bf16", {4, 2});
    return 0;
  }
  if (mode == "parts") {  // time with parts of each step skipped (results then wrong): where the time goes
    const int N = 1, D = 17, H = 128, W = 128, C = 256;
    const size_t n = size_t(N) * D * H * W * C;
    void *x, *w, *y;
    CK(cudaMalloc(&x, n * 2));
    CK(cudaMalloc(&w, C * 27 * 2));
    CK(cudaMalloc(&y, n * 2));
    CK(cudaMemset(x, 0, n * 2));
    CK(cudaMemset(w, 0, C * 27 * 2));
    DwArgs a = args(N, D, H, W, C, x, w, y, false);
    const char* names[8] = {"all", "no transpose", "no mma", "no transpose, no mma", "no store",
                            "no transpose, no store", "no mma, no store", "staging only"};
    for (int skip = 0; skip < 8; ++skip)
      printf("parts bf16 1x17x128x128x256 %-24s 4 slices, 3 blocks %.4f ms  6 slices, 2 blocks %.4f ms\n",
             names[skip], time_ms([&] { launch_tc<__nv_bfloat16>(a, {4, 3}, skip); }),
             time_ms([&] { launch_tc<__nv_bfloat16>(a, {6, 2}, skip); }));
    return 0;
  }
  const int shapes[][5] = {{1, 9, 20, 20, 48}, {2, 5, 13, 17, 32}, {1, 16, 56, 56, 64}, {1, 17, 128, 128, 256},
                           {2, 32, 64, 64, 128}};
  for (Config k : {Config{4, 2}, Config{4, 3}, Config{6, 2}}) {
    printf("== %d raw slices, %d blocks an SM\n", k.stages, k.blocks);
    for (auto& s : shapes) {
      run<__nv_bfloat16>(s[0], s[1], s[2], s[3], s[4], "bf16", k);
      run<__half>(s[0], s[1], s[2], s[3], s[4], "f16", k);
    }
  }
  return 0;
}
