//===- NcclCommunicator.cpp - grouped ncclSend/ncclRecv on a CUstream ------===//
//
// libnccl.so.2 is opened with dlopen, never linked, for the same reason as
// libcuda: the same binaries must run where NCCL (or a GPU) is absent. Only
// nccl.h's types are used; function pointers are typed with decltype of its
// declarations.
//
// The communicator is non-blocking (ncclConfig_t::blocking = 0): NCCL calls
// may return ncclInProgress, after which ncclCommGetAsyncError is polled
// against the deadline, so neither init nor a transfer's enqueue can hang.
// On a timeout or an NCCL error the communicator is aborted (ncclCommAbort),
// the only way to release a stuck NCCL communicator.
//
// The transfers themselves run on the GPU; a peer that never posts its side
// shows up as the stream's synchronize(timeout) throwing CommTimeout. NCCL
// cannot check that sizes match (a mismatch hangs or truncates on the GPU);
// the ring exchanges equal-sized blocks.
//
// allgather(), barrier() and peer-failure notification are delegated to the
// bootstrap communicator (host metadata is tiny and the bootstrap already
// has deadlines and abort messages); it must outlive this communicator.
//
//===----------------------------------------------------------------------===//

#include "CommSupport.h"
#include "StreamImpl.h"

#include "loom/cuda/Driver.h"

#include <cstring>

#if __has_include(<nccl.h>)
#define LOOM_HAVE_NCCL_H 1
#include <dlfcn.h>
#include <nccl.h>

#include <mutex>
#endif

namespace loom::runtime {

#ifndef LOOM_HAVE_NCCL_H

std::unique_ptr<Communicator> createNcclCommunicator(Communicator &, int,
                                                     std::chrono::milliseconds) {
  std::string why;
  if (!cuda::driverAvailable(&why))
    throw Error(ErrorCode::DeviceUnavailable, "NCCL communicator unavailable: " + why);
  throw Error(ErrorCode::DeviceUnavailable,
              "NCCL communicator unavailable: Loom was built without nccl.h");
}

#else

namespace {

using detail::Clock;

/// Function pointers into libnccl.so.2. Names drop the `nccl` prefix.
struct NcclApi {
  decltype(&::ncclGetUniqueId) getUniqueId;
  decltype(&::ncclCommInitRankConfig) commInitRankConfig;
  decltype(&::ncclCommGetAsyncError) commGetAsyncError;
  decltype(&::ncclCommAbort) commAbort;
  decltype(&::ncclCommDestroy) commDestroy;
  decltype(&::ncclCommFinalize) commFinalize;
  decltype(&::ncclGroupStart) groupStart;
  decltype(&::ncclGroupEnd) groupEnd;
  decltype(&::ncclSend) send;
  decltype(&::ncclRecv) recv;
  decltype(&::ncclGetErrorString) getErrorString;
  decltype(&::ncclGetLastError) getLastError;
};

/// The loaded library, or the reason it could not be loaded.
struct LoadedNccl {
  NcclApi api{};
  std::string error;
};

template <typename Fn> void resolve(void *lib, Fn &slot, const char *name, std::string &error) {
  slot = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!slot && error.empty())
    error = std::string("libnccl.so.2 lacks '") + name + "' (NCCL too old?)";
}

LoadedNccl loadNccl() {
  LoadedNccl out;
  void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
#ifdef LOOM_NCCL_FALLBACK_PATH
  // The toolkit's copy, for processes whose library path does not name it.
  if (!lib)
    lib = dlopen(LOOM_NCCL_FALLBACK_PATH, RTLD_NOW | RTLD_LOCAL);
#endif
  if (!lib) {
    const char *why = dlerror();
    out.error = std::string("no NCCL: dlopen(libnccl.so.2) failed: ") +
                (why ? why : "unknown reason");
    return out;
  }
  NcclApi &n = out.api;
  std::string &e = out.error;
  resolve(lib, n.getUniqueId, "ncclGetUniqueId", e);
  resolve(lib, n.commInitRankConfig, "ncclCommInitRankConfig", e);
  resolve(lib, n.commGetAsyncError, "ncclCommGetAsyncError", e);
  resolve(lib, n.commAbort, "ncclCommAbort", e);
  resolve(lib, n.commDestroy, "ncclCommDestroy", e);
  resolve(lib, n.commFinalize, "ncclCommFinalize", e);
  resolve(lib, n.groupStart, "ncclGroupStart", e);
  resolve(lib, n.groupEnd, "ncclGroupEnd", e);
  resolve(lib, n.send, "ncclSend", e);
  resolve(lib, n.recv, "ncclRecv", e);
  resolve(lib, n.getErrorString, "ncclGetErrorString", e);
  resolve(lib, n.getLastError, "ncclGetLastError", e);
  // Like libcuda, the library stays open for the life of the process.
  return out;
}

const NcclApi &nccl() {
  static const LoadedNccl loaded = loadNccl();
  if (!loaded.error.empty())
    throw Error(ErrorCode::DeviceUnavailable, "NCCL communicator unavailable: " + loaded.error);
  return loaded.api;
}

ErrorCode codeFor(ncclResult_t r) {
  switch (r) {
  case ncclRemoteError:
    return ErrorCode::PeerFailed;
  case ncclInvalidArgument:
  case ncclInvalidUsage:
    return ErrorCode::InvalidArgument;
  case ncclUnhandledCudaError:
  case ncclSystemError:
    return ErrorCode::DeviceUnavailable;
  default:
    return ErrorCode::Internal;
  }
}

Error ncclError(ncclResult_t r, ncclComm_t comm, const std::string &who) {
  const NcclApi &n = nccl();
  std::string text = who + ": " + n.getErrorString(r);
  if (const char *last = n.getLastError(comm); last && *last)
    text += std::string(" (") + last + ")";
  return Error(codeFor(r), text);
}

/// Waits until `comm` leaves ncclInProgress. On an error or the deadline,
/// aborts the communicator (it cannot be used after either) and throws.
void waitReady(ncclComm_t comm, ncclResult_t result, Clock::time_point deadline,
               std::chrono::milliseconds timeout, const std::string &who) {
  const NcclApi &n = nccl();
  unsigned polls = 0;
  while (result == ncclInProgress) {
    if (Clock::now() >= deadline) {
      n.commAbort(comm);
      throw detail::commTimeout(who, timeout, "waiting for NCCL");
    }
    detail::pollPause(polls);
    if (ncclResult_t q = n.commGetAsyncError(comm, &result); q != ncclSuccess)
      result = q;
  }
  if (result != ncclSuccess) {
    Error error = ncclError(result, comm, who);
    n.commAbort(comm);
    throw error;
  }
}

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(Communicator &bootstrap, int device, ncclComm_t comm,
                   std::chrono::milliseconds timeout)
      : bootstrap_(bootstrap), context_(device), comm_(comm) {
    timeout_ = timeout;
  }

  ~NcclCommunicator() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!comm_)
      return;
    // Non-blocking teardown as NCCL documents it: finalize (flushes pending
    // work), wait for ncclSuccess, then destroy. A peer that never shows up
    // turns into an abort, not a hang in a destructor.
    const NcclApi &n = nccl();
    try {
      waitReady(comm_, n.commFinalize(comm_), detail::deadlineAfter(timeout_), timeout_,
                "nccl finalize");
    } catch (const Error &) {
      return; // waitReady aborted the communicator
    }
    n.commDestroy(comm_);
  }

  int rank() const override { return bootstrap_.rank(); }
  int size() const override { return bootstrap_.size(); }
  const char *transport() const override { return "nccl"; }

  void sendRecv(const Transfer &t, Stream &stream) override {
    std::string who = "nccl sendRecv on rank " + std::to_string(rank()) + " of " +
                      std::to_string(size());
    detail::checkTransfer(t, size(), who);
    if (stream.backend() != Backend::Cuda)
      throw Error(ErrorCode::InvalidArgument,
                  who + ": needs a CUDA stream (device buffers), got stream '" + stream.name() +
                      "'");
    stream.submit([this, t, who = std::move(who)](const StreamContext &context) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!comm_)
        throw Error(ErrorCode::PeerFailed, who + ": the communicator was aborted");
      context_.makeCurrent();
      const NcclApi &n = nccl();
      auto deadline = detail::deadlineAfter(timeout_);
      auto stream = static_cast<cudaStream_t>(context.nativeStream);
      // Grouped so that both directions progress together (a ring of
      // blocking sends would deadlock).
      ncclResult_t r = n.groupStart();
      if (r == ncclSuccess)
        r = n.send(t.sendBuf, t.sendBytes, ncclUint8, t.sendPeer, comm_, stream);
      if (r == ncclSuccess || r == ncclInProgress)
        r = n.recv(t.recvBuf, t.recvBytes, ncclUint8, t.recvPeer, comm_, stream);
      // The group must be closed whatever happened inside it.
      ncclResult_t end = n.groupEnd();
      if (r == ncclSuccess || r == ncclInProgress)
        r = end;
      try {
        waitReady(comm_, r, deadline, timeout_, who);
      } catch (...) {
        comm_ = nullptr; // waitReady aborted it
        throw;
      }
    });
  }

  /// Host metadata goes through the bootstrap communicator.
  std::vector<std::vector<uint8_t>> allgather(std::span<const uint8_t> mine) override {
    return bootstrap_.allgather(mine);
  }
  void barrier() override { bootstrap_.barrier(); }

  void abort(const std::string &reason) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (comm_)
        nccl().commAbort(comm_);
      comm_ = nullptr;
    }
    // NCCL has no way to carry a reason; the bootstrap does.
    bootstrap_.abort(reason);
  }

  [[noreturn]] void abortJob(const std::string &reason, int exitCode) override {
    abort(reason); // ncclCommAbort: no process exits with NCCL work in flight
    bootstrap_.abortJob(reason, exitCode);
  }

private:
  Communicator &bootstrap_;
  cuda::Context context_;
  std::mutex mutex_; // guards comm_ (NCCL calls on one comm are serialized)
  ncclComm_t comm_;
};

} // namespace

std::unique_ptr<Communicator> createNcclCommunicator(Communicator &bootstrap, int device,
                                                     std::chrono::milliseconds timeout) {
  // The driver first: without it nothing below can work, and on a machine
  // without a GPU this must fail at once with the reason.
  std::string why;
  if (!cuda::driverAvailable(&why))
    throw Error(ErrorCode::DeviceUnavailable, "NCCL communicator unavailable: " + why);
  const NcclApi &n = nccl();
  cuda::Context context(device); // throws DeviceUnavailable for a bad device
  std::string who = "nccl init on rank " + std::to_string(bootstrap.rank()) + " of " +
                    std::to_string(bootstrap.size());
  auto deadline = detail::deadlineAfter(timeout);

  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  std::vector<uint8_t> mine;
  if (bootstrap.rank() == 0) {
    if (ncclResult_t r = n.getUniqueId(&id); r != ncclSuccess)
      throw ncclError(r, nullptr, who + ": ncclGetUniqueId");
    const auto *bytes = reinterpret_cast<const uint8_t *>(&id);
    mine.assign(bytes, bytes + sizeof id);
  }
  auto all = bootstrap.allgather(mine);
  if (all.at(0).size() != sizeof id)
    throw Error(ErrorCode::InvalidArgument,
                who + ": rank 0 sent a " + std::to_string(all[0].size()) +
                    "-byte NCCL unique id, expected " + std::to_string(sizeof id));
  std::memcpy(&id, all[0].data(), sizeof id);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0; // init returns at once; we poll with the deadline
  ncclComm_t comm = nullptr;
  ncclResult_t r =
      n.commInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config);
  if (!comm)
    throw ncclError(r == ncclSuccess ? ncclInternalError : r, nullptr,
                    who + ": ncclCommInitRankConfig");
  waitReady(comm, r, deadline, timeout, who);
  auto result = std::make_unique<NcclCommunicator>(bootstrap, device, comm, timeout);
  return result;
}

#endif // LOOM_HAVE_NCCL_H

} // namespace loom::runtime
