// Which loaded objects count as an OpenMP runtime: the names the wheels and
// distributions ship (GNU libgomp, also renamed by auditwheel; Intel's
// libiomp5; LLVM's libomp), and not their look-alikes.
#include "../../csrc/cpu/openmp_runtime.h"
#include "check.h"

using volconv::cpu::openmp::testing::is_runtime_path;

int main() {
  for (const char* path : {"/usr/lib/x86_64-linux-gnu/libgomp.so.1", "/site-packages/torch/lib/libgomp.so.1",
                           "/site-packages/torch.libs/libgomp-a34b3233.so.1", "/opt/intel/lib/libiomp5.so",
                           "/usr/lib/llvm-19/lib/libomp.so.5", "libomp.dylib"})
    CHECK(is_runtime_path(path));
  for (const char* path : {"/usr/lib/libgompitrace.so", "/usr/lib/libompitrace.so", "/lib/libgomp_debug.so",
                           "/opt/libgomp.so/libc.so.6", "/usr/lib/libm.so.6", ""})
    CHECK(!is_runtime_path(path));
  return check::result("test_openmp_runtime");
}
