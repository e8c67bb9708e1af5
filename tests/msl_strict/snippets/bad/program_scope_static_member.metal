// Known-bad: a static data member outside the constant address space. MSL 3.1,
// Address Spaces (constant): program-scope variables (static members included) must be declared
// in the constant address space ("program scope variable must reside in
// constant address space"). Expected rule: program-scope-not-constant.
#include <metal_stdlib>

using namespace metal;

struct Tile {
  static constexpr int THREADS = 128;
};

kernel void k(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = float(Tile::THREADS);
}
