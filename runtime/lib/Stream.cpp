//===- Stream.cpp - createStream, the timeline clock, deadlines -----------===//
//
// Backend dispatch for streams plus the small clock helpers that streams and
// communicators share. The backends live in CpuStream.cpp and CudaStream.cpp.
//
//===----------------------------------------------------------------------===//

#include "StreamImpl.h"

#include <algorithm>
#include <thread>

namespace loom::runtime {

namespace {
/// The process-wide epoch. A namespace-scope static initializes it at load
/// time, so timelines start near process start rather than at the first
/// nowMs() call; the function-local fallback covers calls made during other
/// translation units' static initialization.
const detail::Clock::time_point &epoch() {
  static const detail::Clock::time_point start = detail::Clock::now();
  return start;
}
[[maybe_unused]] const detail::Clock::time_point &forceEpochAtLoad = epoch();
} // namespace

double nowMs() {
  return std::chrono::duration<double, std::milli>(detail::Clock::now() - epoch()).count();
}

void Stream::retainUntilDone(std::shared_ptr<const void> object) {
  // Runs (and is destroyed) after the work before it; skipped work is
  // destroyed too, so a failed stream never leaks it.
  submit([object = std::move(object)](const StreamContext &) {});
}

std::unique_ptr<Stream> createStream(Backend backend, std::string name) {
  switch (resolveBackend(backend)) {
  case Backend::Cuda:
    return detail::createCudaStream(std::move(name));
  case Backend::Emu:
    return detail::createCpuStream(std::move(name), Backend::Emu);
  case Backend::Cpu:
  case Backend::Auto: // resolveBackend never returns Auto
    break;
  }
  return detail::createCpuStream(std::move(name), Backend::Cpu);
}

namespace detail {

Clock::time_point deadlineAfter(std::chrono::milliseconds timeout) {
  // A year is "forever" for any wait here, and far from overflowing
  // steady_clock's nanosecond representation.
  constexpr std::chrono::milliseconds kForever = std::chrono::hours(24 * 365);
  return Clock::now() + std::clamp(timeout, std::chrono::milliseconds(0), kForever);
}

void pollPause(unsigned &polls, std::chrono::microseconds maxSleep) {
  ++polls;
  if (polls < 64) {
    std::this_thread::yield();
    return;
  }
  // Exponential back-off from 10 us, capped at maxSleep.
  auto sleep = std::chrono::microseconds(10 << std::min(polls - 64, 10u));
  std::this_thread::sleep_for(std::min(sleep, maxSleep));
}

} // namespace detail
} // namespace loom::runtime
