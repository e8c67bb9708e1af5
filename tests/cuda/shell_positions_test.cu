// The dense weight-gradient fix-up's map from a thread to an output whose
// window leaves the input (Shell in csrc/cuda/dense_nonfinite.cu) against
// a brute-force list: every such output exactly once, on 1-D sizes, kernels,
// strides, paddings and dilations up to small bounds. Host code only (no
// GPU): CI compiles it with nvcc and runs it.
#include "cuda/dense_nonfinite.cu"
#include <cstdio>
#include <set>
#include <tuple>
using namespace volconv::cuda;
int main() {  // NOLINT
  int bad = 0, cases = 0;
  for (int in = 1; in <= 9; ++in) for (int k = 1; k <= 4; ++k) for (int st = 1; st <= 3; ++st) for (int pad = 0; pad <= 3; ++pad) for (int kd = 1; kd <= 2; ++kd) {
    DenseWgradFix f; f.batch = 1; f.out_channels = 1;
    int o = (in + 2 * pad - kd * (k - 1) - 1); if (o < 0) continue; o = o / st + 1;
    for (int i = 0; i < 3; ++i) { f.in[i] = in + i; f.kernel[i] = k; f.stride[i] = st; f.pad[i] = pad; f.kdil[i] = kd;
      int oo = (f.in[i] + 2 * pad - kd * (k - 1) - 1); f.out[i] = oo < 0 ? 0 : oo / st + 1; }
    if (f.out[0] == 0 || f.out[1] == 0 || f.out[2] == 0) continue;
    ++cases;
    std::set<std::tuple<int,int,int>> want, got;
    for (int a = 0; a < f.out[0]; ++a) for (int b = 0; b < f.out[1]; ++b) for (int c = 0; c < f.out[2]; ++c) {
      int p[3] = {a, b, c}; bool out = false;
      for (int i = 0; i < 3; ++i) for (int t = 0; t < k; ++t) { long j = long(p[i]) * st - pad + long(t) * kd; if (j < 0 || j >= f.in[i]) out = true; }
      if (out) want.insert({a, b, c});
    }
    Shell s = shell_of(f);
    for (long j = 0; j < s.size(); ++j) {
      int a, b, c, a32, b32, c32;
      s.position(j, a, b, c);
      s.position<int>(int(j), a32, b32, c32);  // the kernel's 32-bit form
      if (!got.insert({a, b, c}).second || a32 != a || b32 != b || c32 != c) ++bad;
    }
    if (got != want) { ++bad; if (bad < 5) printf("in %d k %d st %d pad %d kd %d: got %zu want %zu\n", in, k, st, pad, kd, got.size(), want.size()); }
  }
  printf("shell_positions_test: %d geometries, %d wrong\n", cases, bad);
  return bad == 0 && cases > 700 ? 0 : 1;
}
