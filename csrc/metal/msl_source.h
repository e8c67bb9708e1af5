// The MSL kernels of metal/, embedded at build time by embed_msl.cmake with
// their local includes inlined: the whole Metal library as one source.
#pragma once

namespace volconv::metal {

extern const char* const kMslSource;

}  // namespace volconv::metal
