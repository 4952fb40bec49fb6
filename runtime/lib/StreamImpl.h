//===- StreamImpl.h - backends of createStream and shared helpers -*- C++ -*-===//
//
// Private to runtime/lib: the per-backend stream factories that
// createStream() dispatches to, and the deadline arithmetic every blocking
// wait in streams and communicators shares.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_LIB_STREAMIMPL_H
#define LOOM_RUNTIME_LIB_STREAMIMPL_H

#include "loom/runtime/Stream.h"

#include <chrono>
#include <memory>
#include <string>

namespace loom::runtime::detail {

using Clock = std::chrono::steady_clock;

/// An ordered work queue served by its own thread (Cpu and Emu backends).
std::unique_ptr<Stream> createCpuStream(std::string name, Backend backend);

/// A CUstream on the current context; throws DeviceUnavailable (with the
/// driver's reason) when libcuda cannot be loaded.
std::unique_ptr<Stream> createCudaStream(std::string name);

/// now + timeout, saturated so that "wait forever" timeouts
/// (milliseconds::max(), minutes(10) * 10^6, ...) do not overflow the clock.
Clock::time_point deadlineAfter(std::chrono::milliseconds timeout);

/// Sleeps a little between polls of a non-blocking operation: yields for the
/// first polls (low latency for fast transfers), then backs off to at most
/// `maxSleep` so a long wait does not burn a core. `polls` counts calls.
void pollPause(unsigned &polls,
               std::chrono::microseconds maxSleep = std::chrono::microseconds(500));

} // namespace loom::runtime::detail

#endif
