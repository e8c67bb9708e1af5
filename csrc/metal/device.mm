// The Metal device, the library of embedded kernels, the pipeline cache and
// the command queues GPU streams map to.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include "../core/backend.h"
#include "context.h"
#include "msl_source.h"

namespace volconv::metal {
namespace {

std::string to_string(NSString* s) { return s ? std::string([s UTF8String]) : std::string(); }

// MTLCreateSystemDefaultDevice() can return nil in a headless process (ssh,
// launchd, CI) while MTLCopyAllDevices() still lists the GPU; both are
// searched for a device of the family the kernels need.
void choose_device(Context& ctx) {
  @autoreleasepool {
    std::string seen;  // devices without the family, for the message
    id<MTLDevice> fallback = MTLCreateSystemDefaultDevice();
    NSMutableArray<id<MTLDevice>>* candidates = [NSMutableArray array];
    if (fallback) [candidates addObject:fallback];
    [candidates addObjectsFromArray:MTLCopyAllDevices()];
    for (id<MTLDevice> device in candidates) {
      if ([device supportsFamily:kGpuFamily]) {
        ctx.device = device;
        return;
      }
      seen += (seen.empty() ? "" : ", ") + to_string(device.name);
    }
    ctx.unavailable = seen.empty() ? "no Metal device was found"
                                   : "no Metal device supports the Apple7 GPU family the kernels need (found: " +
                                         seen + ")";
  }
}

}  // namespace

Context& context() {
  static Context* ctx = [] {
    auto* c = new Context;  // never destroyed: queues may be in use at exit
    choose_device(*c);
    return c;
  }();
  return *ctx;
}

Context& available_context() {
  Context& ctx = context();
  if (!ctx.device)
    throw std::invalid_argument("[volconv] The GPU is not available: " + ctx.unavailable + ".");
  return ctx;
}

std::string describe(const std::string& what, NSError* error) {
  if (!error) return "[volconv] " + what + ".";
  return "[volconv] " + what + ": " + to_string(error.localizedDescription) + " (" + to_string(error.domain) + " " +
         std::to_string(long(error.code)) + ").";
}

namespace {

// The library of `unit`, compiled on first use (ctx.mutex held).
id<MTLLibrary> library(Context& ctx, const metal_plan::LibraryUnit& unit) {
  auto it = ctx.libraries.find(unit.key);
  if (it != ctx.libraries.end()) return it->second;
  auto failed = ctx.library_errors.find(unit.key);
  if (failed != ctx.library_errors.end()) throw detail::GpuUnusable(failed->second);
  MTLCompileOptions* options = [MTLCompileOptions new];
  options.languageVersion = MTLLanguageVersion3_1;  // bfloat
  // IEEE semantics (NaN, inf, no reassociation) so results match the CPU path.
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
  options.fastMathEnabled = NO;
#pragma clang diagnostic pop
  NSError* error = nil;
  const std::string source = unit.defines + kMslSource;
  id<MTLLibrary> lib = [ctx.device newLibraryWithSource:@(source.c_str()) options:options error:&error];
  if (!lib) {
    const std::string why = describe("Compiling the Metal kernels (" + unit.key + ") failed", error);
    ctx.library_errors.emplace(unit.key, why);
    throw detail::GpuUnusable(why);
  }
  ctx.libraries.emplace(unit.key, lib);
  return lib;
}

}  // namespace

id<MTLComputePipelineState> pipeline(Context& ctx, const metal_plan::LibraryUnit& unit, const std::string& name) {
  std::lock_guard<std::mutex> lock(ctx.mutex);
  auto it = ctx.pipelines.find(name);
  if (it != ctx.pipelines.end()) return it->second;
  @autoreleasepool {
    id<MTLFunction> function = [library(ctx, unit) newFunctionWithName:@(name.c_str())];
    if (!function)
      throw detail::GpuUnusable("[volconv] The Metal library " + unit.key + " has no kernel named \"" + name + "\".");
    NSError* error = nil;
    id<MTLComputePipelineState> state = [ctx.device newComputePipelineStateWithFunction:function error:&error];
    if (!state)
      throw detail::GpuUnusable(describe("Building the pipeline of kernel \"" + name + "\" failed", error));
    ctx.pipelines.emplace(name, state);
    return state;
  }
}

std::string unavailable_reason() { return context().unavailable; }

// nil contents (private storage) tell the core the CPU cannot read the buffer.
void* buffer_contents(const void* metal_buffer) {
  id<MTLBuffer> buffer = (__bridge id<MTLBuffer>)metal_buffer;
  return buffer.contents;
}

int new_queue() {
  Context& ctx = available_context();
  @autoreleasepool {
    id<MTLCommandQueue> queue = [ctx.device newCommandQueue];
    if (!queue) throw std::runtime_error("[volconv] Creating a Metal command queue failed.");
    std::lock_guard<std::mutex> lock(ctx.mutex);
    ctx.queues.push_back(Queue{queue, nil});
    return int(ctx.queues.size()) - 1;
  }
}

void synchronize(int queue) {
  Context& ctx = available_context();
  id<MTLCommandBuffer> last = nil;
  {
    std::lock_guard<std::mutex> lock(ctx.mutex);
    if (queue < 0 || queue >= int(ctx.queues.size()))
      throw std::invalid_argument("[volconv] Unknown Metal queue " + std::to_string(queue) + ".");
    last = ctx.queues[std::size_t(queue)].last;
  }
  if (!last) return;
  @autoreleasepool {
    [last waitUntilCompleted];
    if (last.status == MTLCommandBufferStatusError)
      throw std::runtime_error(describe("A Metal command buffer failed", last.error));
  }
}

}  // namespace volconv::metal
