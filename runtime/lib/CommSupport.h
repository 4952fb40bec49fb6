//===- CommSupport.h - checks and messages shared by communicators -*- C++ -*-===//
//
// Every transport validates transfers and words its timeout and peer-failure
// errors the same way, so that the ring scheduler (and its users) see one
// vocabulary whatever the transport.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_RUNTIME_LIB_COMMSUPPORT_H
#define LOOM_RUNTIME_LIB_COMMSUPPORT_H

#include "loom/Support/Error.h"
#include "loom/runtime/Communicator.h"

#include <chrono>
#include <string>

namespace loom::runtime::detail {

/// Throws InvalidArgument for a peer outside [0, size) or a null buffer with
/// a non-zero size. `transport` prefixes the message ("inproc sendRecv").
inline void checkTransfer(const Transfer &t, int size, const std::string &who) {
  auto checkPeer = [&](int peer, const char *role) {
    if (peer < 0 || peer >= size)
      throw Error(ErrorCode::InvalidArgument, who + ": " + role + " peer " +
                                                  std::to_string(peer) +
                                                  " is not a rank of a world of size " +
                                                  std::to_string(size));
  };
  checkPeer(t.sendPeer, "send");
  checkPeer(t.recvPeer, "receive");
  if (!t.sendBuf && t.sendBytes)
    throw Error(ErrorCode::InvalidArgument,
                who + ": null send buffer for " + std::to_string(t.sendBytes) + " bytes");
  if (!t.recvBuf && t.recvBytes)
    throw Error(ErrorCode::InvalidArgument,
                who + ": null receive buffer for " + std::to_string(t.recvBytes) + " bytes");
}

/// "rank R failed: reason", the PeerFailed text every transport uses.
inline Error peerFailed(int rank, const std::string &reason) {
  return Error(ErrorCode::PeerFailed, "rank " + std::to_string(rank) + " failed: " + reason);
}

/// "<who>: timed out after N ms <waitingFor>" as CommTimeout.
inline Error commTimeout(const std::string &who, std::chrono::milliseconds timeout,
                         const std::string &waitingFor) {
  return Error(ErrorCode::CommTimeout, who + ": timed out after " +
                                           std::to_string(timeout.count()) + " ms " +
                                           waitingFor);
}

/// The receiver's size-mismatch error, naming both sizes.
inline Error sizeMismatch(const std::string &who, int peer, size_t sent, size_t expected) {
  return Error(ErrorCode::InvalidArgument,
               who + ": rank " + std::to_string(peer) + " sent " + std::to_string(sent) +
                   " bytes but the receive expects " + std::to_string(expected) + " bytes");
}

} // namespace loom::runtime::detail

#endif
