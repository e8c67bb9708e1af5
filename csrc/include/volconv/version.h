#pragma once

#define VOLCONV_VERSION_MAJOR 0
#define VOLCONV_VERSION_MINOR 1
#define VOLCONV_VERSION_PATCH 0

namespace volconv {
inline constexpr const char* version = "0.1.0";
}
