//===- Stream.h - ordered work queues and completion events -----*- C++ -*-===//
//
// The ring scheduler is written once against Stream and Event:
//   - CPU: a stream is an ordered work queue served by its own thread; an
//     event is a completion point (with the host time it completed) that
//     another stream can wait on.
//   - CUDA: a stream is a CUstream (driver API), events are CUevents and
//     cross-stream waits are cuStreamWaitEvent.
//
// submit(work) runs `work` in stream order. On a CPU stream it runs later on
// the stream's thread; on a CUDA stream it runs at once on the caller's
// thread, with the CUstream in StreamContext, to *enqueue* asynchronous
// device work (kernel launches, NCCL calls). Either way, work that follows
// in the stream starts after it.
//
// Errors are sticky: once work on a stream fails, the rest of its queued work
// is skipped, and that error is what synchronize(), events recorded after it,
// and streams waiting on those events report. A CPU event's completion time
// is taken on the stream's thread when the event is reached; elapsed times
// and completedAtMs() require complete events (InvalidArgument otherwise).
//
// Cross-backend waits work both ways: a CPU stream waiting on a CUDA event
// blocks its thread in the event's synchronize(); a CUDA stream waiting on a
// CPU event blocks the caller of wait() until the CPU event completes.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_STREAM_H
#define LOOM_RUNTIME_STREAM_H

#include "loom/runtime/Kernel.h"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace loom::runtime {

/// What submitted work gets: the native stream (CUstream for CUDA, null on
/// the CPU).
struct StreamContext {
  void *nativeStream = nullptr;
};

/// A point in a stream's work; complete once everything submitted before
/// it has run.
class Event {
public:
  virtual ~Event() = default;
  /// True once complete (never blocks).
  virtual bool query() const = 0;
  /// Blocks until complete; throws loom::Error(CommTimeout) naming `what`
  /// after `timeout`, and rethrows the error of failed work before it.
  virtual void synchronize(std::chrono::milliseconds timeout,
                           const std::string &what = "event") const = 0;
  /// Milliseconds from `start` to this event (both complete, same device).
  virtual double elapsedMsSince(const Event &start) const = 0;
  /// Milliseconds since the process-wide epoch (steady clock) at which the
  /// event completed; for timelines. CUDA events report the host time the
  /// completion was observed.
  virtual double completedAtMs() const = 0;
  /// The CUevent behind a CUDA event; null for CPU events. Lets a CUDA
  /// stream wait on the device (cuStreamWaitEvent) instead of the host.
  virtual void *nativeEvent() const { return nullptr; }
};

class Stream {
public:
  virtual ~Stream() = default;
  virtual const std::string &name() const = 0;
  virtual Backend backend() const = 0;
  /// Runs `work` in stream order (see the file comment). If work throws, the
  /// stream records the error, skips the rest of its queued work, and every
  /// later synchronize() or event on it rethrows that error.
  virtual void submit(std::function<void(const StreamContext &)> work) = 0;
  /// An event completing when all work submitted so far has.
  virtual std::shared_ptr<Event> record() = 0;
  /// Work submitted after this call starts after `event` completes.
  virtual void wait(std::shared_ptr<Event> event) = 0;
  /// Keeps `object` alive until the work submitted so far has run, then
  /// releases it: the temporaries of an asynchronous operation (scratch
  /// buffers, block masks) outlive the call that enqueued it. On a CPU
  /// stream it is released on the stream's thread; on a CUDA stream at a
  /// later retainUntilDone() or synchronize() that finds its work done, or
  /// when the stream is destroyed (after its work has finished).
  virtual void retainUntilDone(std::shared_ptr<const void> object);
  /// Blocks until all submitted work has run; rethrows a work error;
  /// throws loom::Error(CommTimeout) after `timeout`.
  virtual void synchronize(std::chrono::milliseconds timeout = std::chrono::minutes(10)) = 0;
};

/// A stream on the given backend: Cpu and Emu give a CPU stream (a thread),
/// Cuda a CUstream on the current context (throws DeviceUnavailable without
/// a driver). Auto resolves as resolveBackend() does.
std::unique_ptr<Stream> createStream(Backend backend, std::string name);

/// Milliseconds since the process-wide steady-clock epoch used by
/// Event::completedAtMs().
double nowMs();

} // namespace loom::runtime

#endif
