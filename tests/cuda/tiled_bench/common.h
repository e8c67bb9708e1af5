#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstring>
#include <string>

struct Prob {
  int n, d, h, w, c;
};
// The baseline (the base commit's kernels): op 0 data, 1 weight gradient; elem 0 f32, 1 bf16, 2 f16; args a DwArgs.
std::string base_run(int op, const Prob& pr, int elem, const void* args, cudaStream_t s);
