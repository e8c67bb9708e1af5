// Devices and streams, after MLX. A Stream is an ordered queue of work on one
// device: on the GPU an MTLCommandQueue, on the CPU the calling thread (work
// completes before conv3d returns).
#pragma once

#include <string>

namespace volconv {

enum class DeviceType { cpu = 0, gpu = 1 };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

struct Stream {
  int index = 0;  // unique per process; 0 is the CPU's default stream
  Device device;
  bool operator==(const Stream& o) const { return index == o.index && device == o.device; }
  bool operator!=(const Stream& o) const { return !(*this == o); }
};

// True when conv3d can run on `device` in this build on this machine.
bool is_available(const Device& device);

// Why `device` is not available ("" when it is).
std::string unavailable_reason(const Device& device);

// The process-wide default device: the GPU when available, else the CPU.
// conv3d without a stream, on a GPU that is only this automatic default,
// runs on the CPU (with one warning) when the GPU cannot run the kernels.
Device default_device();
void set_default_device(const Device& device);

// The default stream of a device; new_stream makes another. Both throw
// std::invalid_argument when the device is not available.
Stream default_stream(const Device& device);
Stream new_stream(const Device& device);

// Waits until all work queued on `stream` has finished.
void synchronize(const Stream& stream);

// Receives volconv's warnings (e.g. that the default GPU cannot run the
// kernels and a call ran on the CPU); nullptr restores the default, which
// prints them to stderr. The handler may throw to turn a warning into an
// error of the call that raised it.
using WarningHandler = void (*)(const char* message);
void set_warning_handler(WarningHandler handler);

}  // namespace volconv
