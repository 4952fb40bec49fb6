//===- CudaStream.cpp - streams and events on CUstream/CUevent -------------===//
//
// Submitted work runs at once on the caller's thread to enqueue device work
// on the CUstream. Waits poll (cuStreamQuery/cuEventQuery) instead of
// blocking in the driver so that they honour their deadline: a transfer
// whose peer never shows up must become CommTimeout, not a hang.
//
// A work error is recorded (not rethrown from submit) so that CPU and CUDA
// streams behave alike: the error surfaces from synchronize() and from every
// event recorded after it.
//
//===----------------------------------------------------------------------===//

#include "StreamImpl.h"

#include "loom/Support/Error.h"
#include "loom/cuda/Driver.h"

#include <deque>
#include <exception>
#include <mutex>
#include <optional>

namespace loom::runtime::detail {
namespace {

std::string timeoutText(std::chrono::milliseconds timeout, const std::string &what,
                        const std::string &stream) {
  return "timed out after " + std::to_string(timeout.count()) + " ms waiting for " + what +
         " on CUDA stream '" + stream + "'";
}

class CudaEvent final : public Event {
public:
  /// `error`: the stream's sticky error when the event was recorded (the
  /// event then stands for failed work and completes at once).
  CudaEvent(std::string streamName, std::exception_ptr error)
      : streamName_(std::move(streamName)), error_(std::move(error)) {}

  void recordOn(CUstream stream) { event_.record(stream); }

  bool query() const override {
    if (error_)
      return true;
    std::lock_guard<std::mutex> lock(mutex_);
    if (completedAt_)
      return true;
    CUresult r = cuda::driver().eventQuery(event_.handle());
    if (r == CUDA_ERROR_NOT_READY)
      return false;
    cuda::check(r, "cuEventQuery");
    completedAt_ = nowMs(); // the host time completion was observed
    return true;
  }

  void synchronize(std::chrono::milliseconds timeout, const std::string &what) const override {
    auto deadline = deadlineAfter(timeout);
    unsigned polls = 0;
    while (!query()) {
      if (Clock::now() >= deadline)
        throw Error(ErrorCode::CommTimeout, timeoutText(timeout, what, streamName_));
      pollPause(polls);
    }
    if (error_)
      std::rethrow_exception(error_);
  }

  double elapsedMsSince(const Event &start) const override {
    if (!query() || !start.query())
      throw Error(ErrorCode::InvalidArgument, "elapsedMsSince needs two complete events");
    // Device timestamps when both are CUDA events with real work behind
    // them; otherwise the observed host times.
    if (start.nativeEvent() && !error_) {
      float ms = 0;
      cuda::check(cuda::driver().eventElapsedTime(&ms, static_cast<CUevent>(start.nativeEvent()),
                                                  event_.handle()),
                  "cuEventElapsedTime");
      return ms;
    }
    return completedAtMs() - start.completedAtMs();
  }

  double completedAtMs() const override {
    if (!query())
      throw Error(ErrorCode::InvalidArgument,
                  "event on CUDA stream '" + streamName_ + "' is not complete yet");
    std::lock_guard<std::mutex> lock(mutex_);
    if (!completedAt_)
      completedAt_ = nowMs(); // failed-work events complete when first asked
    return *completedAt_;
  }

  void *nativeEvent() const override { return event_.handle(); }

private:
  std::string streamName_;
  std::exception_ptr error_;
  cuda::Event event_; // CU_EVENT_DEFAULT: keeps timing for elapsedMsSince
  mutable std::mutex mutex_;
  mutable std::optional<double> completedAt_;
};

class CudaStream final : public Stream {
public:
  explicit CudaStream(std::string name) : name_(std::move(name)) {}

  ~CudaStream() override {
    // Retained objects may be device memory the stream's work still uses.
    if (!retained_.empty())
      cuda::driver().streamSynchronize(stream_.handle()); // no throw here
  }

  const std::string &name() const override { return name_; }
  Backend backend() const override { return Backend::Cuda; }

  void submit(std::function<void(const StreamContext &)> work) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error_)
        return;
    }
    // Unlocked: work may record events on (or submit to) this stream.
    try {
      work(StreamContext{stream_.handle()});
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_)
        error_ = std::current_exception();
    }
  }

  std::shared_ptr<Event> record() override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto event = std::make_shared<CudaEvent>(name_, error_);
    event->recordOn(stream_.handle());
    return event;
  }

  void wait(std::shared_ptr<Event> event) override {
    if (!event)
      return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error_)
        return;
    }
    try {
      if (event->nativeEvent()) {
        // Failed work behind the event poisons this stream too; events
        // standing for failed work are complete, so this never blocks.
        if (event->query())
          event->synchronize(std::chrono::milliseconds(0), "an awaited event");
        stream_.waitEvent(static_cast<CUevent>(event->nativeEvent()));
      } else {
        // A CPU event: the device cannot wait on it, so the host does.
        event->synchronize(std::chrono::hours(24 * 365),
                           "an event awaited by CUDA stream '" + name_ + "'");
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_)
        error_ = std::current_exception();
    }
  }

  void retainUntilDone(std::shared_ptr<const void> object) override {
    std::lock_guard<std::mutex> lock(mutex_);
    releaseFinished();
    try {
      auto event = std::make_unique<cuda::Event>(CU_EVENT_DISABLE_TIMING);
      event->record(stream_.handle());
      retained_.push_back({std::move(event), std::move(object)});
    } catch (...) {
      // The work using `object` is already queued; with no event to tell
      // when it finishes, wait for it here, so the caller dropping `object`
      // cannot free memory under it. Only if even that fails (the context
      // is gone, so nothing will run) does the error reach the caller.
      if (cuda::driver().streamSynchronize(stream_.handle()) != CUDA_SUCCESS)
        throw;
    }
  }

  void synchronize(std::chrono::milliseconds timeout) override {
    auto deadline = deadlineAfter(timeout);
    unsigned polls = 0;
    for (;;) {
      CUresult r = cuda::driver().streamQuery(stream_.handle());
      if (r == CUDA_SUCCESS)
        break;
      if (r != CUDA_ERROR_NOT_READY)
        cuda::check(r, "cuStreamQuery");
      if (Clock::now() >= deadline)
        throw Error(ErrorCode::CommTimeout, timeoutText(timeout, "synchronize", name_));
      pollPause(polls);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    // Not clear(): another thread may have enqueued work and retained its
    // temporaries since the (unlocked) query found the stream idle.
    releaseFinished();
    if (error_)
      std::rethrow_exception(error_);
  }

private:
  /// Drops retained objects whose work has completed. Caller holds mutex_.
  void releaseFinished() {
    std::erase_if(retained_, [](const auto &entry) {
      return cuda::driver().eventQuery(entry.first->handle()) != CUDA_ERROR_NOT_READY;
    });
  }

  const std::string name_;
  cuda::Stream stream_;
  std::mutex mutex_; // guards error_ and retained_
  std::exception_ptr error_;
  std::deque<std::pair<std::unique_ptr<cuda::Event>, std::shared_ptr<const void>>> retained_;
};

} // namespace

std::unique_ptr<Stream> createCudaStream(std::string name) {
  // Checked here, not left to cuStreamCreate: the reason (no libcuda, cuInit
  // failure) is what the user needs to see.
  std::string why;
  if (!cuda::driverAvailable(&why))
    throw Error(ErrorCode::DeviceUnavailable,
                "cannot create CUDA stream '" + name + "': " + why);
  return std::make_unique<CudaStream>(std::move(name));
}

} // namespace loom::runtime::detail
