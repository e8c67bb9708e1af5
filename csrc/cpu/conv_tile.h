// Shared by the CPU drivers: where the rows of an output tile live, and the
// indirection (per tap, per row: an input address or the zero row) that
// lets a micro-kernel read the input in place, padding included, without
// im2col. All offsets are 64-bit element offsets.
#pragma once

#include <cstdint>

#include "volconv/params.h"
#include "volconv/tensor.h"

namespace volconv::cpu {

constexpr int kMaxMR = 16;

// ceil(a / s) for a >= 0 and s >= 1, without a division at the common stride
// 1 (per tap and row run, a 64-bit division was most of the indirection's
// time on tiny convolutions).
inline std::int64_t ceil_div_stride(std::int64_t a, std::int64_t s) { return s == 1 ? a : (a + s - 1) / s; }

// MR consecutive output positions of the flattened (N, Do, Ho, Wo) index.
// A tile may span output rows; rows past the end (r >= valid) are padding.
struct TileRows {
  int valid = 0;
  std::int64_t m0 = 0;                  // flattened position of row 0
  std::int64_t x_off[kMaxMR];           // n * xs[0]
  std::int64_t id0[kMaxMR], ih0[kMaxMR], iw0[kMaxMR];  // input coordinate of tap 0
  std::int64_t y_off[kMaxMR];           // element offset of the output position
};

void locate_rows(const ConvGeometry& g, const Shape5& xs, const Shape5& ys, std::int64_t m0, int mr,
                 TileRows& rows);

// Fills a[s * mr + r] with the address of row r's input at the s-th tap that
// touches the input for at least one row (else `zero`), and tap[s] with that
// tap's index; returns the number of such taps. `x` points at the first
// input channel the kernel reads (group offset included); esize in bytes.
std::int64_t build_indirection(const ConvGeometry& g, const Shape5& xs, const TileRows& rows, int mr,
                               const char* x, std::int64_t esize, const void* zero, const void** a,
                               std::int64_t* tap);

// The same with the whole W window folded into K (groups == 1, dilation 1
// along W, channels then W contiguous in the input): per (kd, kh) a row reads
// KW * C_in consecutive elements from its first tap. A row whose window
// crosses the W border gets a zero-padded copy of its window in `scratch`
// (room for mr * KD * KH windows); a row in D/H padding gets `zero`
// (at least KW * C_in long). tap[s] is the (kd, kh) index kd * KH + kh.
std::int64_t build_indirection_fold_w(const ConvGeometry& g, const Shape5& xs, const TileRows& rows, int mr,
                                      const char* x, std::int64_t esize, const void* zero, char* scratch,
                                      const void** a, std::int64_t* tap);

}  // namespace volconv::cpu

namespace volconv::cpu {

struct KernelTable;

// Where tiles are written: the output view, as bytes.
struct OutputTarget {
  char* y;
  DType dtype;
  std::int64_t esize;
  Shape5 strides;
  bool stream = false;  // non-temporal stores (CpuPlan::stream)
};

// Writes the valid rows of an fp32 tile c (row stride ldc) to output channels
// [chan0, chan0 + nc), converting to the output dtype.
void store_output_tile(const KernelTable& kt, const OutputTarget& out, const TileRows& rows, std::int64_t chan0,
                       const float* c, int ldc, int nc);

int storage_code(DType dtype);

}  // namespace volconv::cpu
