//===- ThreadGroup.h - in-process ranks for cluster tuning ------*- C++ -*-===//
//
// A minimal in-process Communicator (ranks are threads of one process) with
// what tuneCluster() uses: allgather, barrier and abort, each with the
// communicator's deadline. sendRecv is not implemented (Unsupported): the
// full in-process transport is runtime::createInProcessCommunicators(),
// which `loom tune --world P` and the cluster tests should switch to once it
// is implemented (it is only declared in this branch).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_THREADGROUP_H
#define LOOM_AUTOTUNE_THREADGROUP_H

#include "loom/runtime/Communicator.h"

#include <memory>
#include <vector>

namespace loom::autotune {

/// `worldSize` communicators sharing one rendezvous, rank i at index i.
/// Throws InvalidArgument for worldSize < 1.
std::vector<std::unique_ptr<runtime::Communicator>>
createThreadGroup(int worldSize,
                  std::chrono::milliseconds timeout = runtime::kDefaultCommTimeout);

} // namespace loom::autotune

#endif
