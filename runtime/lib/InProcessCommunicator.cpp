//===- InProcessCommunicator.cpp - ranks as threads of one process ---------===//
//
// All ranks of a group share one Group: a mailbox per (src, dst) pair, the
// state of the pending allgathers, and the first abort. One mutex and one
// condition variable cover it all; groups are small (tests, the demo) and
// every wait re-checks the abort flag, which a per-mailbox design would make
// harder to get right.
//
// Sends are buffered: the payload is copied into the receiver's mailbox at
// once, so a send never waits for its receiver and a grouped sendRecv cannot
// deadlock a ring; only the receive waits, against the deadline. Messages
// between a pair of ranks match in posting order.
//
//===----------------------------------------------------------------------===//

#include "CommSupport.h"
#include "StreamImpl.h"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

namespace loom::runtime {
namespace {

using detail::Clock;

struct Group {
  explicit Group(int size) : size(size), mailboxes(size_t(size) * size) {}

  /// One allgather (or barrier) instance: the k-th call of every rank.
  struct Gather {
    std::vector<std::optional<std::vector<uint8_t>>> parts;
    int arrived = 0;
    int taken = 0;
  };

  std::deque<std::vector<uint8_t>> &mailbox(int src, int dst) {
    return mailboxes[size_t(src) * size + dst];
  }

  /// Throws PeerFailed once any rank has aborted. Caller holds `mutex`.
  void throwIfFailed() const {
    if (failure)
      throw detail::peerFailed(failure->first, failure->second);
  }

  const int size;
  std::mutex mutex;
  std::condition_variable changed; // any mailbox, gather or the abort flag
  std::vector<std::deque<std::vector<uint8_t>>> mailboxes;
  std::map<uint64_t, Gather> gathers;
  std::optional<std::pair<int, std::string>> failure; // (rank, reason)
};

class InProcessCommunicator final : public Communicator {
public:
  InProcessCommunicator(std::shared_ptr<Group> group, int rank, std::chrono::milliseconds timeout)
      : group_(std::move(group)), rank_(rank) {
    timeout_ = timeout;
  }

  int rank() const override { return rank_; }
  int size() const override { return group_->size; }
  const char *transport() const override { return "inproc"; }

  void sendRecv(const Transfer &t, Stream &stream) override {
    std::string who = describe("sendRecv");
    detail::checkTransfer(t, size(), who);
    if (stream.backend() == Backend::Cuda)
      throw Error(ErrorCode::InvalidArgument,
                  who + ": needs a CPU stream (host buffers), got CUDA stream '" + stream.name() +
                      "'");
    // The work owns what it needs: the communicator may go away before the
    // stream runs it.
    stream.submit([group = group_, rank = rank_, t, timeout = timeout_,
                   who = std::move(who)](const StreamContext &) {
      transfer(*group, rank, t, timeout, who);
    });
  }

  std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) override {
    return gather(mine, "allgather");
  }

  void barrier() override { gather({}, "barrier"); }

  void abort(const std::string &reason) override {
    {
      std::lock_guard<std::mutex> lock(group_->mutex);
      if (!group_->failure) // the first failure is the one worth reporting
        group_->failure.emplace(rank_, reason);
    }
    group_->changed.notify_all();
  }

private:
  std::string describe(const char *op) const {
    return std::string("inproc ") + op + " on rank " + std::to_string(rank_) + " of " +
           std::to_string(group_->size);
  }

  static void transfer(Group &g, int rank, const Transfer &t, std::chrono::milliseconds timeout,
                       const std::string &who) {
    auto deadline = detail::deadlineAfter(timeout);
    // Copy before locking: payloads can be large.
    const auto *src = static_cast<const uint8_t *>(t.sendBuf);
    std::vector<uint8_t> payload(src, src + t.sendBytes);
    std::vector<uint8_t> received;
    {
      std::unique_lock<std::mutex> lock(g.mutex);
      g.throwIfFailed();
      g.mailbox(rank, t.sendPeer).push_back(std::move(payload));
      g.changed.notify_all();
      auto &inbox = g.mailbox(t.recvPeer, rank);
      bool ready = g.changed.wait_until(lock, deadline,
                                        [&] { return g.failure || !inbox.empty(); });
      g.throwIfFailed();
      if (!ready)
        throw detail::commTimeout(who, timeout,
                                  "waiting to receive " + std::to_string(t.recvBytes) +
                                      " bytes from rank " + std::to_string(t.recvPeer));
      received = std::move(inbox.front());
      inbox.pop_front();
    }
    if (received.size() != t.recvBytes)
      throw detail::sizeMismatch(who, t.recvPeer, received.size(), t.recvBytes);
    if (!received.empty())
      std::memcpy(t.recvBuf, received.data(), received.size());
  }

  std::vector<std::vector<uint8_t>> gather(std::span<const uint8_t> mine, const char *op) {
    Group &g = *group_;
    std::string who = describe(op);
    auto deadline = detail::deadlineAfter(timeout_);
    // The k-th collective call of every rank forms instance k, so a rank
    // that skipped one makes the others time out instead of mixing data
    // from different steps.
    uint64_t instance = gatherCalls_++;
    std::unique_lock<std::mutex> lock(g.mutex);
    g.throwIfFailed();
    Group::Gather &gather = g.gathers[instance];
    if (gather.parts.empty())
      gather.parts.resize(g.size);
    gather.parts[rank_].emplace(mine.begin(), mine.end());
    ++gather.arrived;
    g.changed.notify_all();
    bool ready = g.changed.wait_until(
        lock, deadline, [&] { return g.failure || gather.arrived == g.size; });
    g.throwIfFailed();
    if (!ready) {
      std::string missing;
      for (int r = 0; r < g.size; ++r)
        if (!gather.parts[r])
          missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      // The instance stays: a late rank must still find it (and time out
      // or finish on its own); it is small.
      throw detail::commTimeout(who, timeout_, "waiting for rank(s) " + missing + " to join");
    }
    std::vector<std::vector<uint8_t>> result;
    result.reserve(g.size);
    for (auto &part : gather.parts)
      result.push_back(*part);
    if (++gather.taken == g.size)
      g.gathers.erase(instance);
    return result;
  }

  std::shared_ptr<Group> group_;
  int rank_;
  std::atomic<uint64_t> gatherCalls_{0};
};

} // namespace

std::vector<std::unique_ptr<Communicator>>
createInProcessCommunicators(int worldSize, std::chrono::milliseconds timeout) {
  if (worldSize < 1)
    throw Error(ErrorCode::InvalidArgument,
                "in-process communicator: world size must be >= 1, got " +
                    std::to_string(worldSize));
  auto group = std::make_shared<Group>(worldSize);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < worldSize; ++r)
    comms.push_back(std::make_unique<InProcessCommunicator>(group, r, timeout));
  return comms;
}

std::vector<std::exception_ptr>
runInProcessRanks(int worldSize, const std::function<void(Communicator &)> &body,
                  std::chrono::milliseconds timeout) {
  auto comms = createInProcessCommunicators(worldSize, timeout);
  std::vector<std::exception_ptr> errors(comms.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < comms.size(); ++r)
    threads.emplace_back([&, r] {
      try {
        body(*comms[r]);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto &t : threads)
    t.join();
  return errors;
}

void Communicator::abortJob(const std::string &reason, int exitCode) {
  abort(reason);
  std::fflush(stdout);
  std::fflush(stderr);
  // No destructors nor atexit handlers: they may wait on the peers.
  std::_Exit(exitCode);
}

void rethrowFirstError(const std::vector<std::exception_ptr> &errors) {
  // The cause first: an error other than a peer's failure report.
  for (const auto &e : errors) {
    if (!e)
      continue;
    try {
      std::rethrow_exception(e);
    } catch (const Error &err) {
      if (err.code() != ErrorCode::PeerFailed)
        throw;
    } catch (...) {
      throw;
    }
  }
  for (const auto &e : errors)
    if (e)
      std::rethrow_exception(e);
}

} // namespace loom::runtime
