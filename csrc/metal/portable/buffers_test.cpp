// Tests of the host's buffer decisions and staging copies; built and run by
// tests/test_metal_host.py with the system compiler (no Metal needed).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../core/float_convert.h"
#include "buffers.h"

using namespace volconv;
using namespace volconv::metal;

static int failures = 0;
#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::printf("%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                    \
    }                                                                \
  } while (0)

static void test_contiguity() {
  const Shape5 shape{2, 3, 4, 5, 6};
  CHECK(is_contiguous(shape, contiguous_strides(shape)));
  CHECK(!is_contiguous(shape, {360, 120, 30, 6, 2}));
  CHECK(is_contiguous({1, 3, 1, 5, 6}, {999, 30, 7, 6, 1}));  // size-1 dims: any stride
  CHECK(!is_contiguous({2, 3, 4, 5, 6}, {0, 120, 30, 6, 1}));  // broadcast
  CHECK(!is_contiguous({2, 1, 1, 1, 2}, {-2, 1, 1, 1, 1}));     // negative
}

static void test_plan() {
  void* page = std::aligned_alloc(kPageBytes, 4 * kPageBytes);
  const Shape5 shape{1, 2, 3, 4, 5};  // 120 elements
  const auto view = ConstTensorView::contiguous(page, DType::float32, shape);
  BufferPlan p = plan_buffer(view, DType::float32);
  CHECK(p.zero_copy && p.bytes == 480 && p.length == kPageBytes);
  p = plan_buffer(view, DType::float16);  // needs a conversion
  CHECK(!p.zero_copy && p.bytes == 240 && p.length == 240);
  auto shifted = view;
  shifted.data = static_cast<char*>(page) + 64;  // contiguous but not on a page
  p = plan_buffer(shifted, DType::float32);
  CHECK(!p.zero_copy && p.length == 480);
  auto strided = view;
  strided.strides[4] = 2;
  CHECK(!plan_buffer(strided, DType::float32).zero_copy);
  const auto big = ConstTensorView::contiguous(page, DType::float32, {1, 1, 1, 1, 4097});
  p = plan_buffer(big, DType::float32);
  CHECK(p.zero_copy && p.length == 2 * kPageBytes);
  const auto empty = ConstTensorView::contiguous(page, DType::float32, {1, 0, 3, 4, 5});
  p = plan_buffer(empty, DType::float32);
  CHECK(!p.zero_copy && p.bytes == 0 && p.length == 4);  // Metal has no empty buffers
  CHECK(memory_of(view).host == page && memory_of(view).metal_buffer == nullptr);
  std::free(page);
}

// A transposed, strided float32 view gathered to contiguous bfloat16 / half,
// and scattered back into a strided float64 view.
static void test_gather_scatter() {
  const Shape5 shape{2, 3, 2, 2, 3};
  const Shape5 base_shape{2, 3, 2, 2, 6};
  std::vector<float> base(std::size_t(numel(base_shape)));
  for (std::size_t i = 0; i < base.size(); ++i) base[i] = 0.37f * float(i) - 11.f;
  ConstTensorView src{base.data(), DType::float32, shape, contiguous_strides(base_shape)};
  src.strides[4] = 2;  // every other channel
  // swap the two middle spatial dims
  std::swap(src.shape[2], src.shape[3]);
  std::swap(src.strides[2], src.strides[3]);
  const auto at = [&](std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d, std::int64_t e) {
    return base[std::size_t(a * src.strides[0] + b * src.strides[1] + c * src.strides[2] + d * src.strides[3] +
                            e * src.strides[4])];
  };
  const std::int64_t n = numel(src.shape);
  const auto count = std::size_t(n);
  std::vector<std::uint16_t> bf(count), hf(count);
  std::vector<float> f(count);
  gather(src, bf.data(), DType::bfloat16);
  gather(src, hf.data(), DType::float16);
  gather(src, f.data(), DType::float32);
  std::int64_t i = 0;
  for (std::int64_t a = 0; a < 2; ++a)
    for (std::int64_t b = 0; b < 3; ++b)
      for (std::int64_t c = 0; c < 2; ++c)
        for (std::int64_t d = 0; d < 2; ++d)
          for (std::int64_t e = 0; e < 3; ++e, ++i) {
            const float v = at(a, b, c, d, e);
            CHECK(f[std::size_t(i)] == v);
            CHECK(bf[std::size_t(i)] == detail::float_to_bf16(v));
            CHECK(hf[std::size_t(i)] == detail::float_to_half(v));
          }

  // Scatter the half values into every third element of a float64 array.
  std::vector<double> out(3 * count, -1.0);
  TensorView dst = TensorView::contiguous(out.data(), DType::float64, src.shape);
  for (auto& s : dst.strides) s *= 3;
  scatter(hf.data(), DType::float16, dst);
  for (std::int64_t k = 0; k < 3 * n; ++k) {
    const double want = k % 3 == 0 ? double(detail::half_to_float(hf[std::size_t(k / 3)])) : -1.0;
    CHECK(out[std::size_t(k)] == want);
  }

  // Same dtype, contiguous rows: the memcpy path.
  std::vector<float> back(count);
  scatter(f.data(), DType::float32, TensorView::contiguous(back.data(), DType::float32, src.shape));
  CHECK(back == f);
}

int main() {
  test_contiguity();
  test_plan();
  test_gather_scatter();
  if (failures == 0) std::printf("buffers_test: all passed\n");
  return failures == 0 ? 0 : 1;
}
