//===- Communicator.h - point-to-point and small collectives ----*- C++ -*-===//
//
// What the ring needs from a transport: a rank, a world size, one grouped
// send+receive per ring step enqueued on a communication stream, and small
// host collectives (allgather of metadata, barrier). Every blocking wait has
// a deadline: a peer that dies, stalls or skips a step turns into
// loom::Error(CommTimeout) or loom::Error(PeerFailed) on every other rank
// within timeout(), never a hang.
//
// Implementations:
//   - in-process: ranks are threads of one process (tests, the demo);
//   - MPI: ranks are processes started by mpirun; non-blocking
//     MPI_Isend/MPI_Irecv polled against the deadline;
//   - NCCL: grouped ncclSend/ncclRecv on the stream's CUstream,
//     non-blocking init with a deadline, async-error polling and
//     ncclCommAbort on failure.
//
// In-process and MPI transfers need a CPU stream (host buffers) and run on
// its thread; NCCL transfers need a CUDA stream (device buffers) and are
// enqueued on it, so their completion deadline is the stream's
// synchronize(timeout). Transfers between a pair of ranks match in posting
// order. After a CommTimeout or PeerFailed, treat the communicator as dead:
// abort() it (or the job) rather than carry on, since a peer may be one
// step behind.
//
// Errors and the job: Loom's calls never end the process. On a failure they
// abort() the communicator (so the peers fail now, with the reason) and
// throw. Whether the job ends is the host program's choice, and ending it
// is abortJob(): a program under mpirun must not simply return from main
// after a communication error, because MPI_Finalize waits for every rank
// and a stalled rank (SIGSTOP, a hung GPU, a paused VM) never arrives, so
// the job would hang. `loom ring --transport mpi` and
// examples/ring_attention print their error line, then call abortJob().
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_COMMUNICATOR_H
#define LOOM_RUNTIME_COMMUNICATOR_H

#include "loom/runtime/Stream.h"

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace loom::runtime {

/// Default deadline of every blocking communication (the 60 s).
inline constexpr std::chrono::milliseconds kDefaultCommTimeout{60000};
/// How long abortJob() lets the peers it told report their errors before
/// MPI_Abort kills them. 1 s was once too short for a peer on a loaded
/// 2-core machine (4 ranks, the test suite alongside) to print its line.
inline constexpr std::chrono::milliseconds kAbortJobGrace{2000};

/// One ring step's transfers: send `sendBytes` from `sendBuf` to `sendPeer`
/// and receive `recvBytes` into `recvBuf` from `recvPeer`. The sizes must
/// match the peer's (a mismatch is an InvalidArgument error on the receiver
/// naming both sizes). Buffers are host memory for in-process and MPI, device
/// memory for NCCL.
struct Transfer {
  const void *sendBuf = nullptr;
  size_t sendBytes = 0;
  int sendPeer = -1;
  void *recvBuf = nullptr;
  size_t recvBytes = 0;
  int recvPeer = -1;
};

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "inproc", "mpi" or "nccl".
  virtual const char *transport() const = 0;

  /// Enqueues `t` on `stream` (grouped: both directions progress together,
  /// so a ring never deadlocks). On a CPU stream the transfer runs on the
  /// stream's thread and completes within timeout() or fails the stream with
  /// CommTimeout/PeerFailed. Throws InvalidArgument at once for a bad peer
  /// or null buffer.
  virtual void sendRecv(const Transfer &t, Stream &stream) = 0;

  /// Blocking: every rank's `mine` (sizes may differ) in rank order. NCCL
  /// delegates allgather() and barrier() to its bootstrap communicator.
  virtual std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) = 0;
  /// Blocking barrier with the deadline.
  virtual void barrier() = 0;
  /// Tells every peer this rank failed (`reason` is shown to them): their
  /// pending and later calls throw PeerFailed naming this rank and reason.
  /// Never blocks for long; safe to call more than once.
  virtual void abort(const std::string &reason) = 0;
  /// Ends the whole job after an error this rank will not recover from,
  /// without waiting for any peer: abort(reason), stdout and stderr
  /// flushed, then MPI: MPI_Abort(MPI_COMM_WORLD, exitCode) after a short
  /// grace (kAbortJobGrace) in which peers, told by abort(), print their
  /// own errors; mpirun then kills every rank (a stopped one included) and
  /// exits nonzero. NCCL: ncclCommAbort, then the bootstrap's abortJob.
  /// In-process: the process exits with `exitCode` (every rank is in it).
  /// Never returns; the library never calls it (see the file comment).
  [[noreturn]] virtual void abortJob(const std::string &reason, int exitCode);

  std::chrono::milliseconds timeout() const { return timeout_; }
  void setTimeout(std::chrono::milliseconds t) { timeout_ = t; }

protected:
  std::chrono::milliseconds timeout_ = kDefaultCommTimeout;
};

/// `worldSize` communicators of one in-process group, one per rank (rank i
/// at index i); each is used from its rank's thread(s). Throws
/// InvalidArgument for worldSize < 1.
std::vector<std::unique_ptr<Communicator>>
createInProcessCommunicators(int worldSize,
                             std::chrono::milliseconds timeout = kDefaultCommTimeout);

/// Runs body(comm) for every rank of a new in-process group of `worldSize`,
/// one thread per rank, and joins them; returns each rank's exception (null
/// where it succeeded) in rank order.
std::vector<std::exception_ptr>
runInProcessRanks(int worldSize, const std::function<void(Communicator &)> &body,
                  std::chrono::milliseconds timeout = kDefaultCommTimeout);

/// Rethrows the cause among runInProcessRanks' errors: the first (in rank
/// order) that is not a peer's PeerFailed report, else the first error.
void rethrowFirstError(const std::vector<std::exception_ptr> &errors);

/// MPI_COMM_WORLD of a process started by mpirun (MPI_Init_thread on first
/// use, finalized at exit). Each call is collective (a duplicate of
/// MPI_COMM_WORLD, so Loom's traffic never mixes with the application's):
/// every rank creates its communicators in the same order. Transfers are
/// limited to INT_MAX bytes. Throws DeviceUnavailable when Loom was built
/// without MPI.
std::unique_ptr<Communicator>
createMpiCommunicator(std::chrono::milliseconds timeout = kDefaultCommTimeout);

/// True when this process was started by mpirun/mpiexec (OMPI/PMI env).
bool launchedByMpi();

/// A NCCL communicator with the bootstrap's rank and size on CUDA device
/// `device` (its primary context). Rank 0 creates the ncclUniqueId and the
/// bootstrap's allgather() shares it; init is non-blocking with the
/// deadline. The bootstrap must outlive the result: allgather(), barrier()
/// and abort()'s notice to peers go through it. NCCL cannot check that
/// transfer sizes match (the ring's are equal by construction). Throws
/// DeviceUnavailable naming the cause (no CUDA driver, no libnccl, no
/// device) without hanging.
std::unique_ptr<Communicator>
createNcclCommunicator(Communicator &bootstrap, int device,
                       std::chrono::milliseconds timeout = kDefaultCommTimeout);

} // namespace loom::runtime

#endif
