// PROTOTYPE driver (run.sh beside it): the Toeplitz tensor-core forward /
// input gradient (tc_toeplitz.cuh: 8-channel blocks; tc_toeplitz16.cuh:
// 16-channel blocks) against main's FFMA tiled kernel (the reference here;
// the suite tests it against float64) on edge and bench shapes, bf16 and
// fp16: agreement (elements differing, largest relative difference), NaN and
// inf placement with non-finite inputs, blocks that took the FFMA fallback,
// and time (CUDA events over back-to-back launches).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "../../../csrc/cuda/depthwise_plan.cpp"
#include "../../../csrc/cuda/depthwise_kernels.cuh"
#include "tc_toeplitz.cuh"
#include "tc_toeplitz16.cuh"

using namespace volconv;
using cuda::DwArgs;

#define CK(x)                                                                        \
  do {                                                                               \
    cudaError_t e = (x);                                                             \
    if (e != cudaSuccess) {                                                          \
      printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

static double g_bw = 4.2e12;

float time_ms(const std::function<void()>& f, int reps = 20) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ts;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a);
    for (int i = 0; i < reps; ++i) f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    ts.push_back(ms / reps);
  }
  CK(cudaGetLastError());
  std::sort(ts.begin(), ts.end());
  return ts[2];
}

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
  DwArgs a;
  a.batch = N;
  a.channels = C;
  const int in[3] = {D, H, W};
  for (int i = 0; i < 3; ++i) {
    a.in[i] = a.out[i] = in[i];
    a.kernel[i] = 3;
    a.stride[i] = 1;
    a.pad[i] = 1;
    a.kdil[i] = 1;
    a.idil[i] = 1;
  }
  a.flip = flip;
  std::int64_t s[5] = {std::int64_t(D) * H * W * C, std::int64_t(H) * W * C, std::int64_t(W) * C, C, 1};
  for (int i = 0; i < 5; ++i) a.xs[i] = a.ys[i] = s[i];
  std::int64_t ws[5] = {27, 9, 3, 1, 1};
  for (int i = 0; i < 5; ++i) a.ws[i] = ws[i];
  a.x = x;
  a.w = w;
  a.y_out = y;
  return a;
}

static int g_variant = 0;  // 0: 8-channel blocks (tc_toeplitz.cuh), 1: 16-channel blocks (tc_toeplitz16.cuh)
static int g_stages = 4;   // the 16-channel form's raw slices

template <class T>
void launch_tc(const DwArgs& a, int blocks) {
  if (g_variant == 1) {
    if (g_stages == 6)
      blocks == 2 ? tct16::launch<T, 2, 6>(a, 0) : tct16::launch<T, 3, 6>(a, 0);
    else if (g_stages == 8)
      blocks == 2 ? tct16::launch<T, 2, 8>(a, 0) : tct16::launch<T, 3, 8>(a, 0);
    else
      blocks == 2 ? tct16::launch<T, 2, 4>(a, 0) : tct16::launch<T, 3, 4>(a, 0);
    return;
  }
  if (blocks == 4)
    tct::launch<T, 4>(a, 0);
  else if (blocks == 3)
    tct::launch<T, 3>(a, 0);
  else
    tct::launch<T, 2>(a, 0);
}

template <class T>
void run(int N, int D, int H, int W, int C, const char* tname, int blocks) {
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
  detail::ConvProblemGeometry geo{};
  geo.batch = N;
  geo.in = geo.out = {D, H, W};
  geo.kernel = {3, 3, 3};
  geo.in_channels = geo.out_channels = geo.groups = C;
  geo.padding_lo = {1, 1, 1};
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
    launch_tc<T>(av, blocks);
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
    const float t_tc = time_ms([&] { launch_tc<T>(av, blocks); });
    printf("%-18s %-5s %-8s ffma %.4f ms (%4.1f%% bw)  tc%d %.4f ms (%4.1f%% bw)  %s\n", shape, tname, dir, t_ref,
           100 * bytes / (t_ref * 1e-3) / g_bw, blocks, t_tc, 100 * bytes / (t_tc * 1e-3) / g_bw, cmp.c_str());
  }
  cudaFree(x), cudaFree(w), cudaFree(y_ref), cudaFree(y);
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  {
    void *a, *b;
    const size_t bytes = size_t(1) << 30;
    cudaMalloc(&a, bytes);
    cudaMalloc(&b, bytes);
    const float ms = time_ms([&] { cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice); }, 5);
    g_bw = 2.0 * bytes / (ms * 1e-3);
    printf("copy bandwidth %.3f TB/s\n", g_bw / 1e12);
    cudaFree(a), cudaFree(b);
  }
  if (mode == "profile") {
    run<__nv_bfloat16>(1, 17, 128, 128, 256, "bf16", 4);
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
      printf("parts bf16 1x17x128x128x256 %-24s 8-ch %.4f ms  16-ch (6 stages, 2 blocks) %.4f ms\n", names[skip],
             time_ms([&] { tct::launch<__nv_bfloat16, 3>(a, 0, skip); }),
             time_ms([&] { tct16::launch<__nv_bfloat16, 2, 6>(a, 0, skip); }));
    return 0;
  }
  if (mode == "v16") {  // the 16-channel form: raw stages x blocks an SM
    g_variant = 1;
    const int shapes16[][5] = {{2, 5, 13, 17, 32}, {1, 16, 56, 56, 64}, {1, 17, 128, 128, 256}, {2, 32, 64, 64, 128}};
    for (int stages : {4, 6, 8})
      for (int blocks : {2, 3}) {
        if (stages == 8 && blocks == 3) continue;  // shared memory: two blocks at most
        g_stages = stages;
        printf("== 16-channel form, %d raw slices, %d blocks an SM\n", stages, blocks);
        for (auto& sh : shapes16) run<__nv_bfloat16>(sh[0], sh[1], sh[2], sh[3], sh[4], "bf16", blocks);
      }
    return 0;
  }
  if (mode == "quick") {
    for (int blocks : {3, 4}) {
      run<__nv_bfloat16>(1, 17, 128, 128, 256, "bf16", blocks);
      run<__nv_bfloat16>(2, 32, 64, 64, 128, "bf16", blocks);
      run<__half>(1, 17, 128, 128, 256, "f16", blocks);
      run<__nv_bfloat16>(1, 16, 56, 56, 64, "bf16", blocks);
    }
    return 0;
  }
  const int shapes[][5] = {{1, 9, 20, 20, 40}, {2, 5, 13, 17, 24}, {1, 16, 56, 56, 64}, {1, 17, 128, 128, 256},
                           {2, 32, 64, 64, 128}};
  for (int blocks : {2, 3, 4})
    for (auto& s : shapes) {
      run<__nv_bfloat16>(s[0], s[1], s[2], s[3], s[4], "bf16", blocks);
      run<__half>(s[0], s[1], s[2], s[3], s[4], "f16", blocks);
    }
  return 0;
}
