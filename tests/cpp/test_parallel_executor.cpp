// set_parallel_executor: a host's executor runs conv3d's chunks on its own
// threads, with results bit-identical to volconv's pool and within float32
// rounding of a float64 loop; an executor that skips a chunk is an error,
// not a silently wrong output; an empty executor restores the default.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.h"
#include "volconv/volconv.h"

using namespace volconv;

namespace {

const Stream cpu{0, Device{DeviceType::cpu, 0}};

struct Problem {
  Shape5 in_shape{2, 5, 7, 9, 6}, wt_shape{10, 3, 3, 3, 6}, out_shape{2, 5, 7, 9, 10};
  std::vector<float> x, w;
  Problem() {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::int64_t i = 0; i < 2 * 5 * 7 * 9 * 6; ++i) x.push_back(u(rng));
    for (std::int64_t i = 0; i < 10 * 27 * 6; ++i) w.push_back(u(rng));
  }
  std::vector<float> run() const {
    std::vector<float> y(std::size_t(2 * 5 * 7 * 9 * 10));
    ConvParams params;
    params.padding_lo = params.padding_hi = {1, 1, 1};
    conv3d(ConstTensorView::contiguous(x.data(), DType::float32, in_shape),
           ConstTensorView::contiguous(w.data(), DType::float32, wt_shape),
           TensorView::contiguous(y.data(), DType::float32, out_shape), params, cpu);
    return y;
  }
};

// Independent of the library: the float64 direct loop, NDHWC, padding 1.
std::vector<double> reference(const Problem& p) {
  std::vector<double> y(std::size_t(2 * 5 * 7 * 9 * 10), 0.0);
  for (int n = 0; n < 2; ++n)
    for (int d = 0; d < 5; ++d)
      for (int h = 0; h < 7; ++h)
        for (int wo = 0; wo < 9; ++wo)
          for (int co = 0; co < 10; ++co) {
            double acc = 0.0;
            for (int kd = 0; kd < 3; ++kd)
              for (int kh = 0; kh < 3; ++kh)
                for (int kw = 0; kw < 3; ++kw) {
                  const int id = d + kd - 1, ih = h + kh - 1, iw = wo + kw - 1;
                  if (id < 0 || id >= 5 || ih < 0 || ih >= 7 || iw < 0 || iw >= 9) continue;
                  for (int ci = 0; ci < 6; ++ci)
                    acc += double(p.x[std::size_t((((n * 5 + id) * 7 + ih) * 9 + iw) * 6 + ci)]) *
                           double(p.w[std::size_t((((co * 3 + kd) * 3 + kh) * 3 + kw) * 6 + ci)]);
                }
            y[std::size_t((((n * 5 + d) * 7 + h) * 9 + wo) * 10 + co)] = acc;
          }
  return y;
}

void test_executor_runs_the_chunks() {
  const Problem p;
  cpu::set_num_threads(3);
  const std::vector<float> pooled = p.run();
  const std::vector<double> ref = reference(p);
  for (std::size_t i = 0; i < ref.size(); ++i) CHECK(std::fabs(pooled[i] - ref[i]) <= 1e-5 * (1.0 + std::fabs(ref[i])));

  std::atomic<int> calls{0}, most_chunks{0};
  cpu::set_parallel_executor([&](int chunks, const std::function<void(int)>& run) {
    ++calls;
    most_chunks = std::max(most_chunks.load(), chunks);
    std::vector<std::thread> threads;
    for (int i = chunks - 1; i >= 0; --i) threads.emplace_back(run, i);  // any order, any threads
    for (auto& t : threads) t.join();
  });
  const std::vector<float> executed = p.run();
  CHECK(calls.load() > 0);
  CHECK(most_chunks.load() >= 2 && most_chunks.load() <= 3);
  CHECK(executed == pooled);

  cpu::set_parallel_executor(nullptr);
  const int before = calls.load();
  CHECK(p.run() == pooled);
  CHECK_EQ(calls.load(), before);
}

void test_an_executor_that_skips_a_chunk_is_an_error() {
  const Problem p;
  cpu::set_num_threads(3);
  cpu::set_parallel_executor([](int chunks, const std::function<void(int)>& run) {
    for (int i = 0; i + 1 < chunks; ++i) run(i);
  });
  CHECK_THROWS_MSG(std::runtime_error, p.run(),
                   "[conv3d] The parallel executor returned after running 2 of 3 chunks; it must run each once.");
  cpu::set_parallel_executor(nullptr);
}

}  // namespace

int main() {
  test_executor_runs_the_chunks();
  test_an_executor_that_skips_a_chunk_is_an_error();
  return check::result("test_parallel_executor");
}
