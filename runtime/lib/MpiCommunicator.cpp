//===- MpiCommunicator.cpp - ranks as processes of MPI_COMM_WORLD ----------===//
//
// Every wait is a poll against the deadline, never a blocking MPI call: a
// blocking MPI_Recv or MPI_Allgather hangs forever when a peer died or
// skipped a step. Transfers are MPI_Isend + a matched probe (MPI_Improbe)
// then MPI_Imrecv, so the receiver learns the incoming size and can name
// both sizes on a mismatch instead of a bare MPI_ERR_TRUNCATE. Collectives
// are MPI_Iallgather/MPI_Iallgatherv/MPI_Ibarrier.
//
// Every poll loop also probes a dedicated abort tag: abort(reason) sends the
// reason to every peer on that tag, and a peer's next (or pending) call
// throws PeerFailed("rank R failed: reason").
//
// Point-to-point tags carry a per-(peer, direction) sequence number, so a
// rank that skipped a step makes its peers time out rather than silently
// receive a payload meant for another step. Tags also carry the
// communicator's generation (how many were created before it): MPI reuses a
// freed communicator's context id, and a message left unreceived on the old
// one must not match a receive on the new one. For the same reason a
// communicator that saw a failure or timeout is never freed (its context id
// stays taken), only leaked.
//
// The communicator works on a duplicate of MPI_COMM_WORLD with
// MPI_ERRORS_RETURN, so it neither sees the application's own traffic nor
// kills the job on an MPI error.
//
//===----------------------------------------------------------------------===//

#include "CommSupport.h"
#include "StreamImpl.h"

#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#ifdef LOOM_HAVE_MPI
// The C API only: MPI's deprecated C++ bindings need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <optional>
#endif

namespace loom::runtime {

bool launchedByMpi() {
  for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (const char *v = std::getenv(var); v && *v)
      return true;
  return false;
}

#ifndef LOOM_HAVE_MPI

std::unique_ptr<Communicator> createMpiCommunicator(std::chrono::milliseconds) {
  throw Error(ErrorCode::DeviceUnavailable,
              "MPI communicator unavailable: Loom was built without MPI "
              "(configure with -DLOOM_ENABLE_MPI=ON and an MPI installation)");
}

#else

namespace {

using detail::Clock;

constexpr int kAbortTag = 1;
constexpr int kFirstDataTag = 2;
/// Sequence numbers per generation before tags of two generations can meet.
constexpr uint64_t kStepsPerGeneration = 1 << 16;

std::string mpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, len);
}

void checkMpi(int code, const char *call) {
  if (code != MPI_SUCCESS)
    throw Error(ErrorCode::Internal, std::string(call) + " failed: " + mpiErrorText(code));
}

/// Process-wide MPI state: initialized on first use, finalized at exit.
class MpiProcess {
public:
  static MpiProcess &get() {
    // Leaked on purpose: the atexit handler may run after static destructors.
    static MpiProcess *instance = new MpiProcess();
    return *instance;
  }

  /// Holds the MPI lock when MPI lacks MPI_THREAD_MULTIPLE (the stream
  /// thread and the caller's thread both call MPI); empty otherwise.
  std::unique_lock<std::mutex> lock() {
    return serialize_ ? std::unique_lock<std::mutex>(mutex_) : std::unique_lock<std::mutex>();
  }

private:
  MpiProcess() {
    int initialized = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&initialized);
    if (initialized) {
      // The application owns MPI (and finalizes it).
      MPI_Query_thread(&provided);
    } else {
      int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      if (rc != MPI_SUCCESS)
        throw Error(ErrorCode::DeviceUnavailable,
                    "MPI_Init_thread failed: " + mpiErrorText(rc));
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized)
          MPI_Finalize();
      });
    }
    // Below MPI_THREAD_SERIALIZED, serializing is the best that can be done.
    serialize_ = provided < MPI_THREAD_MULTIPLE;
    // MPI guarantees tags up to at least 32767; Open MPI allows 2^31 - 1.
    int *tagUb = nullptr, found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tagUb, &found);
    dataTags_ = uint64_t((found && tagUb ? *tagUb : 32767) - kFirstDataTag + 1);
  }

public:
  /// Tags available for data (kFirstDataTag onwards).
  uint64_t dataTags() const { return dataTags_; }

private:
  uint64_t dataTags_ = 32767 - kFirstDataTag + 1;

  std::mutex mutex_;
  bool serialize_ = true;
};

/// Polls `requests` with MPI_Testall until they complete or `deadline`
/// passes (false); `between` runs before each poll and may throw.
template <typename Between>
bool pollAll(MpiProcess &mpi, int count, MPI_Request *requests, Clock::time_point deadline,
             Between between) {
  unsigned polls = 0;
  for (;;) {
    between();
    int done = 0;
    {
      auto lock = mpi.lock();
      checkMpi(MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    }
    if (done)
      return true;
    if (Clock::now() >= deadline)
      return false;
    detail::pollPause(polls);
  }
}

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator(MPI_Comm comm, uint64_t generation, std::chrono::milliseconds timeout)
      : comm_(comm), generation_(generation) {
    timeout_ = timeout;
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    sendSeq_.assign(size_, 0);
    recvSeq_.assign(size_, 0);
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    std::lock_guard<std::mutex> state(stateMutex_);
    if (!finalized && !failure_ && !troubled_) {
      auto lock = mpi_.lock();
      MPI_Comm_free(&comm_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char *transport() const override { return "mpi"; }

  void sendRecv(const Transfer &t, Stream &stream) override {
    std::string who = describe("sendRecv");
    detail::checkTransfer(t, size_, who);
    if (stream.backend() == Backend::Cuda)
      throw Error(ErrorCode::InvalidArgument,
                  who + ": needs a CPU stream (host buffers), got CUDA stream '" + stream.name() +
                      "'");
    if (t.sendBytes > INT_MAX || t.recvBytes > INT_MAX)
      throw Error(ErrorCode::InvalidArgument,
                  who + ": transfers are limited to " + std::to_string(INT_MAX) + " bytes");
    // Tags are taken in submission order (the caller's program order), not
    // when the stream runs the transfer.
    int sendTag, recvTag;
    {
      std::lock_guard<std::mutex> lock(stateMutex_);
      sendTag = tagFor(sendSeq_[t.sendPeer]++);
      recvTag = tagFor(recvSeq_[t.recvPeer]++);
    }
    // The communicator must outlive the work (as with any Loom object used
    // by a stream); buffers are the caller's.
    stream.submit([this, t, sendTag, recvTag, timeout = timeout_,
                   who = std::move(who)](const StreamContext &) {
      transfer(t, sendTag, recvTag, timeout, who);
    });
  }

  std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) override {
    std::string who = describe("allgather");
    auto deadline = detail::deadlineAfter(timeout_);
    checkCollectives();
    checkPeers();
    // Heap buffers: after a timeout MPI still owns them (a non-blocking
    // collective cannot be cancelled), so they are then leaked, not freed.
    auto state = std::make_unique<GatherState>();
    state->mine.assign(mine.begin(), mine.end());
    state->mySize = mine.size();
    state->sizes.assign(size_, 0);
    MPI_Request request;
    {
      auto lock = mpi_.lock();
      checkMpi(MPI_Iallgather(&state->mySize, 1, MPI_UINT64_T, state->sizes.data(), 1,
                              MPI_UINT64_T, comm_, &request),
               "MPI_Iallgather");
    }
    waitCollective(request, deadline, who, "for every rank's size", state);
    std::vector<int> counts(size_), displs(size_);
    uint64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      if (total + state->sizes[r] > INT_MAX)
        throw Error(ErrorCode::InvalidArgument,
                    who + ": gathered data exceeds " + std::to_string(INT_MAX) + " bytes");
      counts[r] = int(state->sizes[r]);
      displs[r] = int(total);
      total += state->sizes[r];
    }
    state->all.resize(total);
    {
      auto lock = mpi_.lock();
      checkMpi(MPI_Iallgatherv(state->mine.data(), int(state->mine.size()), MPI_BYTE,
                               state->all.data(), counts.data(), displs.data(), MPI_BYTE, comm_,
                               &request),
               "MPI_Iallgatherv");
    }
    waitCollective(request, deadline, who, "for every rank's data", state);
    std::vector<std::vector<uint8_t>> result(size_);
    for (int r = 0; r < size_; ++r)
      result[r].assign(state->all.begin() + displs[r], state->all.begin() + displs[r] + counts[r]);
    return result;
  }

  void barrier() override {
    std::string who = describe("barrier");
    auto deadline = detail::deadlineAfter(timeout_);
    checkCollectives();
    checkPeers();
    std::unique_ptr<GatherState> none;
    MPI_Request request;
    {
      auto lock = mpi_.lock();
      checkMpi(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    }
    waitCollective(request, deadline, who, "for every rank to arrive", none);
  }

  void abort(const std::string &reason) override {
    {
      std::lock_guard<std::mutex> lock(stateMutex_);
      if (!failure_)
        failure_.emplace(rank_, reason);
      if (abortSent_)
        return;
      abortSent_ = true;
    }
    // Best effort and short: the reason is small, so the sends complete
    // eagerly; a peer that is gone must not keep us here. The buffer is
    // leaked because MPI may still read it after we stop waiting.
    auto *message = new std::string(reason);
    std::vector<MPI_Request> requests;
    {
      auto lock = mpi_.lock();
      for (int peer = 0; peer < size_; ++peer) {
        if (peer == rank_)
          continue;
        MPI_Request request;
        if (MPI_Isend(message->data(), int(message->size()), MPI_CHAR, peer, kAbortTag, comm_,
                      &request) == MPI_SUCCESS)
          requests.push_back(request);
      }
    }
    try {
      if (!pollAll(mpi_, int(requests.size()), requests.data(),
                   detail::deadlineAfter(std::chrono::milliseconds(200)), [] {}))
        freeRequests(requests);
    } catch (const Error &) {
      // Best effort: a failing MPI must not turn abort() into a new error.
    }
  }

  [[noreturn]] void abortJob(const std::string &reason, int exitCode) override {
    abort(reason);
    std::fflush(stdout);
    std::fflush(stderr);
    // The peers just told poll the abort tag in every wait: a grace lets
    // them print their own error before MPI_Abort has mpirun kill them.
    std::this_thread::sleep_for(kAbortJobGrace);
    int code = exitCode == 0 ? 1 : exitCode;
    // A job was once seen to outlive MPI_Abort here (Open MPI 4.1, several
    // ranks aborting at once): should this process not be gone soon,
    // exiting nonzero makes mpirun abort the job all the same.
    std::thread([code] {
      std::this_thread::sleep_for(3 * kAbortJobGrace);
      std::_Exit(code);
    }).detach();
    // Not under the MPI lock: another thread of this rank may hold it in a
    // poll, and MPI_Abort must not wait for anything.
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code); // MPI_Abort returned (it should not)
  }

private:
  struct GatherState {
    uint64_t mySize = 0;
    std::vector<uint64_t> sizes;
    std::vector<uint8_t> mine, all;
  };

  int tagFor(uint64_t seq) const {
    return kFirstDataTag + int((generation_ * kStepsPerGeneration + seq) % mpi_.dataTags());
  }

  /// Remembers that requests were abandoned on this communicator.
  void markTroubled() {
    std::lock_guard<std::mutex> lock(stateMutex_);
    troubled_ = true;
  }

  std::string describe(const char *op) const {
    return std::string("mpi ") + op + " on rank " + std::to_string(rank_) + " of " +
           std::to_string(size_);
  }

  void freeRequests(std::vector<MPI_Request> &requests) {
    auto lock = mpi_.lock();
    for (MPI_Request &r : requests)
      if (r != MPI_REQUEST_NULL)
        MPI_Request_free(&r);
  }

  /// Throws PeerFailed for a recorded failure or an abort message from a
  /// peer (which is then recorded, so later calls throw too).
  void checkPeers() {
    {
      std::lock_guard<std::mutex> lock(stateMutex_);
      if (failure_)
        throw detail::peerFailed(failure_->first, failure_->second);
    }
    int flag = 0;
    MPI_Status status;
    std::string reason;
    {
      auto lock = mpi_.lock();
      checkMpi(MPI_Iprobe(MPI_ANY_SOURCE, kAbortTag, comm_, &flag, &status), "MPI_Iprobe");
      if (!flag)
        return;
      int count = 0;
      MPI_Get_count(&status, MPI_CHAR, &count);
      reason.resize(count);
      // Already arrived (the probe matched it), so this does not block.
      checkMpi(MPI_Recv(reason.data(), count, MPI_CHAR, status.MPI_SOURCE, kAbortTag, comm_,
                        MPI_STATUS_IGNORE),
               "MPI_Recv");
    }
    std::lock_guard<std::mutex> lock(stateMutex_);
    if (!failure_)
      failure_.emplace(status.MPI_SOURCE, reason);
    throw detail::peerFailed(failure_->first, failure_->second);
  }

  /// After a collective timed out, its request is still pending and any
  /// later collective would be matched against the wrong call.
  void checkCollectives() {
    std::lock_guard<std::mutex> lock(stateMutex_);
    if (!collectivesBroken_.empty())
      throw Error(ErrorCode::CommTimeout, collectivesBroken_);
  }

  void waitCollective(MPI_Request &request, Clock::time_point deadline, const std::string &who,
                      const std::string &waitingFor, std::unique_ptr<GatherState> &state) {
    bool done = false;
    try {
      done = pollAll(mpi_, 1, &request, deadline, [&] { checkPeers(); });
    } catch (...) {
      (void)state.release(); // MPI may still write into it
      throw;
    }
    if (done)
      return;
    (void)state.release();
    Error error = detail::commTimeout(who, timeout_, "waiting " + waitingFor);
    std::lock_guard<std::mutex> lock(stateMutex_);
    troubled_ = true;
    collectivesBroken_ = std::string(error.what()) + " (earlier; collectives on this "
                                                     "communicator are out of step)";
    throw error;
  }

  void transfer(const Transfer &t, int sendTag, int recvTag, std::chrono::milliseconds timeout,
                const std::string &who) {
    auto deadline = detail::deadlineAfter(timeout);
    checkPeers();
    // [0]: the send, [1]: the receive once its message is matched.
    std::vector<MPI_Request> requests(2, MPI_REQUEST_NULL);
    bool matched = false;
    try {
      {
        auto lock = mpi_.lock();
        checkMpi(MPI_Isend(t.sendBuf, int(t.sendBytes), MPI_BYTE, t.sendPeer, sendTag, comm_,
                           &requests[0]),
                 "MPI_Isend");
      }
      auto matchReceive = [&] {
        checkPeers();
        if (matched)
          return;
        int flag = 0;
        MPI_Message message;
        MPI_Status status;
        auto lock = mpi_.lock();
        checkMpi(MPI_Improbe(t.recvPeer, recvTag, comm_, &flag, &message, &status),
                 "MPI_Improbe");
        if (!flag)
          return;
        matched = true;
        int count = 0;
        MPI_Get_count(&status, MPI_BYTE, &count);
        if (size_t(count) != t.recvBytes) {
          // Drain the message so it cannot match a later step.
          std::vector<uint8_t> sink(count);
          MPI_Mrecv(sink.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE);
          throw detail::sizeMismatch(who, t.recvPeer, size_t(count), t.recvBytes);
        }
        checkMpi(MPI_Imrecv(t.recvBuf, count, MPI_BYTE, &message, &requests[1]), "MPI_Imrecv");
      };
      // Testall treats MPI_REQUEST_NULL as complete, so "all done" also
      // needs the receive to have been matched.
      unsigned polls = 0;
      for (;;) {
        if (pollAll(mpi_, 2, requests.data(), Clock::time_point::min(), matchReceive) && matched)
          return;
        if (Clock::now() >= deadline)
          break;
        detail::pollPause(polls);
      }
    } catch (...) {
      cancel(requests);
      throw;
    }
    cancel(requests);
    throw detail::commTimeout(who, timeout,
                              matched ? "receiving " + std::to_string(t.recvBytes) +
                                            " bytes from rank " + std::to_string(t.recvPeer)
                              : "waiting for " + std::to_string(t.recvBytes) +
                                    " bytes from rank " + std::to_string(t.recvPeer) +
                                    (requests[0] != MPI_REQUEST_NULL
                                         ? " (the send to rank " + std::to_string(t.sendPeer) +
                                               " is also pending)"
                                         : ""));
  }

  /// Cancels and frees pending point-to-point requests. A send the peer
  /// never matches is withdrawn; one already in flight completes on its own
  /// (MPI_Request_free), so its buffer should stay valid until the job
  /// ends or aborts, which is what a timed-out ring does next.
  void cancel(std::vector<MPI_Request> &requests) {
    markTroubled();
    auto lock = mpi_.lock();
    for (MPI_Request &r : requests)
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Request_free(&r);
      }
  }

  MpiProcess &mpi_ = MpiProcess::get();
  MPI_Comm comm_;
  const uint64_t generation_;
  int rank_ = 0, size_ = 1;
  std::mutex stateMutex_; // guards everything below
  std::vector<uint64_t> sendSeq_, recvSeq_;
  std::optional<std::pair<int, std::string>> failure_;
  bool abortSent_ = false;
  bool troubled_ = false; // requests abandoned: keep comm_ (see file comment)
  std::string collectivesBroken_;
};

} // namespace

std::unique_ptr<Communicator> createMpiCommunicator(std::chrono::milliseconds timeout) {
  MpiProcess &mpi = MpiProcess::get();
  // Every rank creates its communicators in the same order (MPI_Comm_idup
  // is collective), so this count agrees across ranks.
  static std::atomic<uint64_t> generations{0};
  uint64_t generation = generations++;
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Request request;
  {
    auto lock = mpi.lock();
    checkMpi(MPI_Comm_idup(MPI_COMM_WORLD, &comm, &request), "MPI_Comm_idup");
  }
  if (!pollAll(mpi, 1, &request, detail::deadlineAfter(timeout), [] {}))
    throw detail::commTimeout("createMpiCommunicator", timeout,
                              "waiting for every rank of MPI_COMM_WORLD to join");
  {
    auto lock = mpi.lock();
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  }
  return std::make_unique<MpiCommunicator>(comm, generation, timeout);
}

#endif // LOOM_HAVE_MPI

} // namespace loom::runtime
