// volconv: fast, memory-lean 3-D convolution. The one header to include.
#pragma once

#include "volconv/conv3d.h"
#include "volconv/conv_general.h"
#include "volconv/cpu.h"
#include "volconv/device.h"
#include "volconv/dtype.h"
#include "volconv/epilogue.h"
#include "volconv/out_of_memory.h"
#include "volconv/packed_weights.h"
#include "volconv/padding_mode.h"
#include "volconv/params.h"
#include "volconv/tensor.h"
#include "volconv/version.h"
