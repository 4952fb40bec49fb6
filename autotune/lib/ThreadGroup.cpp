//===- ThreadGroup.cpp - in-process ranks for cluster tuning --------------===//
#include "loom/autotune/ThreadGroup.h"

#include "loom/Support/Error.h"

#include <condition_variable>
#include <fmt/format.h>
#include <mutex>

namespace loom::autotune {
namespace {

/// Generation-counted rendezvous: every rank deposits its bytes, the last
/// one to arrive publishes the round and wakes the others.
struct Shared {
  explicit Shared(int n) : world(n), slots(size_t(n)) {}
  int world;
  std::mutex mutex;
  std::condition_variable cv;
  uint64_t generation = 0;
  int arrived = 0;
  std::vector<std::vector<uint8_t>> slots, published;
  bool aborted = false;
  int abortRank = -1;
  std::string abortReason;
};

class ThreadComm final : public runtime::Communicator {
public:
  ThreadComm(std::shared_ptr<Shared> s, int rank) : s_(std::move(s)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return s_->world; }
  const char *transport() const override { return "inproc"; }

  void sendRecv(const runtime::Transfer &, runtime::Stream &) override {
    throw Error(ErrorCode::Unsupported,
                "autotune thread group: sendRecv is not implemented (use "
                "runtime::createInProcessCommunicators)");
  }

  std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) override {
    std::unique_lock<std::mutex> lock(s_->mutex);
    throwIfAborted();
    uint64_t gen = s_->generation;
    s_->slots[size_t(rank_)].assign(mine.begin(), mine.end());
    if (++s_->arrived == s_->world) {
      s_->published = s_->slots;
      s_->arrived = 0;
      ++s_->generation;
      s_->cv.notify_all();
      return s_->published;
    }
    if (!s_->cv.wait_for(lock, timeout(),
                         [&] { return s_->generation != gen || s_->aborted; }))
      throw Error(ErrorCode::CommTimeout,
                  fmt::format("rank {}: allgather timed out after {} ms", rank_,
                              timeout().count()));
    throwIfAborted();
    // The next round cannot complete before this rank joins it, so the
    // published vector is still this round's.
    return s_->published;
  }

  void barrier() override { allgather({}); }

  void abort(const std::string &reason) override {
    std::lock_guard<std::mutex> lock(s_->mutex);
    if (!s_->aborted) {
      s_->aborted = true;
      s_->abortRank = rank_;
      s_->abortReason = reason;
    }
    s_->cv.notify_all();
  }

private:
  void throwIfAborted() {
    if (s_->aborted && s_->abortRank != rank_)
      throw Error(ErrorCode::PeerFailed,
                  fmt::format("rank {} failed: {}", s_->abortRank, s_->abortReason));
  }
  std::shared_ptr<Shared> s_;
  int rank_;
};
} // namespace

std::vector<std::unique_ptr<runtime::Communicator>>
createThreadGroup(int worldSize, std::chrono::milliseconds timeout) {
  if (worldSize < 1)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("thread group: world size must be >= 1, got {}", worldSize));
  auto shared = std::make_shared<Shared>(worldSize);
  std::vector<std::unique_ptr<runtime::Communicator>> out;
  for (int r = 0; r < worldSize; ++r) {
    out.push_back(std::make_unique<ThreadComm>(shared, r));
    out.back()->setTimeout(timeout);
  }
  return out;
}

} // namespace loom::autotune
