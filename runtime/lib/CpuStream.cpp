//===- CpuStream.cpp - streams as ordered queues served by one thread ------===//
//
// A CPU stream owns one thread that pops tasks in order. There are three
// kinds of task: user work, an event marker (completes an Event with the
// stream's state at that point), and a cross-stream wait (the stream's
// thread blocks in the other event's synchronize()). Errors are sticky: after
// the first failure, work is skipped but markers still complete, carrying
// the error, so nothing waiting on this stream hangs.
//
// Destroying a stream drains its queue first (like cuStreamDestroy lets
// enqueued work finish), so every event it recorded completes.
//
//===----------------------------------------------------------------------===//

#include "StreamImpl.h"

#include "loom/Support/Error.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <variant>

namespace loom::runtime::detail {
namespace {

/// Completion state shared by an event and the stream that completes it.
struct CpuEventState {
  mutable std::mutex mutex;
  std::condition_variable done;
  bool complete = false;
  std::exception_ptr error;
  double completedAt = 0;
};

class CpuEvent final : public Event {
public:
  CpuEvent(std::shared_ptr<CpuEventState> state, std::string streamName)
      : state_(std::move(state)), streamName_(std::move(streamName)) {}

  bool query() const override {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->complete;
  }

  void synchronize(std::chrono::milliseconds timeout, const std::string &what) const override {
    std::unique_lock<std::mutex> lock(state_->mutex);
    if (!state_->done.wait_until(lock, deadlineAfter(timeout), [&] { return state_->complete; }))
      throw Error(ErrorCode::CommTimeout, "timed out after " + std::to_string(timeout.count()) +
                                              " ms waiting for " + what + " on stream '" +
                                              streamName_ + "'");
    if (state_->error)
      std::rethrow_exception(state_->error);
  }

  double elapsedMsSince(const Event &start) const override {
    return completedAtMs() - start.completedAtMs();
  }

  double completedAtMs() const override {
    std::lock_guard<std::mutex> lock(state_->mutex);
    if (!state_->complete)
      throw Error(ErrorCode::InvalidArgument,
                  "event on stream '" + streamName_ + "' is not complete yet");
    return state_->completedAt;
  }

private:
  std::shared_ptr<CpuEventState> state_;
  std::string streamName_;
};

class CpuStream final : public Stream {
public:
  CpuStream(std::string name, Backend backend)
      : name_(std::move(name)), backend_(backend), thread_([this] { serve(); }) {}

  ~CpuStream() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  const std::string &name() const override { return name_; }
  Backend backend() const override { return backend_; }

  void submit(std::function<void(const StreamContext &)> work) override {
    push(Task{std::move(work)});
  }

  std::shared_ptr<Event> record() override {
    auto state = std::make_shared<CpuEventState>();
    push(Task{state});
    return std::make_shared<CpuEvent>(std::move(state), name_);
  }

  void wait(std::shared_ptr<Event> event) override {
    if (event)
      push(Task{WaitFor{std::move(event)}});
  }

  void synchronize(std::chrono::milliseconds timeout) override {
    // Work that synchronizes its own stream would wait for itself.
    if (std::this_thread::get_id() == thread_.get_id())
      throw Error(ErrorCode::InvalidArgument,
                  "synchronize() called from work running on stream '" + name_ + "'");
    record()->synchronize(timeout, "synchronize");
  }

private:
  struct WaitFor {
    std::shared_ptr<Event> event;
  };
  struct Task {
    std::variant<std::function<void(const StreamContext &)>, std::shared_ptr<CpuEventState>,
                 WaitFor>
        what;
  };

  void push(Task task) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    wake_.notify_one();
  }

  void serve() {
    const StreamContext context; // no native stream on the CPU
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty())
          return; // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      // Only this thread touches error_, so no lock is needed for it.
      if (auto *work = std::get_if<0>(&task.what)) {
        if (error_)
          continue;
        try {
          (*work)(context);
        } catch (...) {
          error_ = std::current_exception();
        }
      } else if (auto *marker = std::get_if<1>(&task.what)) {
        CpuEventState &state = **marker;
        {
          std::lock_guard<std::mutex> lock(state.mutex);
          state.complete = true;
          state.error = error_;
          state.completedAt = nowMs();
        }
        state.done.notify_all();
      } else if (!error_) {
        // A year: the waited-on stream's own deadlines (communication
        // timeouts) bound how long this really blocks.
        try {
          std::get<2>(task.what).event->synchronize(std::chrono::hours(24 * 365),
                                                    "an event awaited by stream '" + name_ + "'");
        } catch (...) {
          error_ = std::current_exception();
        }
      }
    }
  }

  const std::string name_;
  const Backend backend_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_; // last: starts after the members it uses exist
};

} // namespace

std::unique_ptr<Stream> createCpuStream(std::string name, Backend backend) {
  return std::make_unique<CpuStream>(std::move(name), backend);
}

} // namespace loom::runtime::detail
