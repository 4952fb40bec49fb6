//===- CommunicatorTest.cpp - in-process communicators, NCCL probe --------===//
//
// Ranks are threads; each rank has its own communication stream, as the ring
// scheduler will.
//
//===----------------------------------------------------------------------===//
#include "loom/cuda/Driver.h"
#include "loom/runtime/Communicator.h"

#include "ExpectError.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <thread>

using namespace loom;
using namespace loom::runtime;
using namespace std::chrono_literals;

namespace {

using Comms = std::vector<std::unique_ptr<Communicator>>;

/// Runs body(rank) on one thread per rank and joins them. Failures inside
/// are reported by gtest (its assertions are thread-safe).
void onEveryRank(Comms &comms, const std::function<void(int)> &body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < int(comms.size()); ++r)
    threads.emplace_back(body, r);
  for (auto &t : threads)
    t.join();
}

std::vector<uint8_t> randomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto &b : out)
    b = uint8_t(rng());
  return out;
}

/// Step `step`'s payload of `rank` (sizes vary per step, 0 included).
std::vector<uint8_t> payload(int rank, int step) {
  return randomBytes(size_t((step * 37 + rank * 11) % 300), unsigned(rank * 1000 + step));
}

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

TEST(InProcessCommunicator, RingSendRecvIsByteExact) {
  const int kSteps = 20;
  for (int world = 1; world <= 8; ++world) {
    auto comms = createInProcessCommunicators(world, 10s);
    onEveryRank(comms, [&](int rank) {
      Communicator &comm = *comms[rank];
      EXPECT_EQ(comm.rank(), rank);
      EXPECT_EQ(comm.size(), world);
      EXPECT_STREQ(comm.transport(), "inproc");
      auto stream = createStream(Backend::Cpu, "comm" + std::to_string(rank));
      int next = (rank + 1) % world, prev = (rank + world - 1) % world;
      // Enqueue every step at once (as the ring does), check after.
      std::vector<std::vector<uint8_t>> sent(kSteps), received(kSteps);
      for (int step = 0; step < kSteps; ++step) {
        sent[step] = payload(rank, step);
        received[step].assign(payload(prev, step).size(), 0xEE);
        comm.sendRecv({sent[step].data(), sent[step].size(), next, received[step].data(),
                       received[step].size(), prev},
                      *stream);
      }
      stream->synchronize(10s);
      for (int step = 0; step < kSteps; ++step)
        EXPECT_EQ(received[step], payload(prev, step))
            << "world " << world << " rank " << rank << " step " << step;
    });
  }
}

TEST(InProcessCommunicator, AllgatherOfDifferentSizesAndBarrier) {
  auto comms = createInProcessCommunicators(5, 10s);
  onEveryRank(comms, [&](int rank) {
    for (int round = 0; round < 3; ++round) {
      auto all = comms[rank]->allgather(payload(rank, round));
      ASSERT_EQ(all.size(), 5u);
      for (int r = 0; r < 5; ++r)
        EXPECT_EQ(all[r], payload(r, round)) << "round " << round << " from " << r;
      comms[rank]->barrier();
    }
  });
}

TEST(InProcessCommunicator, SizeMismatchNamesBothSizes) {
  auto comms = createInProcessCommunicators(2, 5s);
  onEveryRank(comms, [&](int rank) {
    auto stream = createStream(Backend::Cpu, "comm");
    std::vector<uint8_t> out(rank == 0 ? 100 : 64), in(64);
    int peer = 1 - rank;
    comms[rank]->sendRecv({out.data(), out.size(), peer, in.data(), in.size(), peer}, *stream);
    if (rank == 1)
      expectLoomErrorContaining([&] { stream->synchronize(5s); }, ErrorCode::InvalidArgument,
                                {"rank 0 sent 100 bytes", "expects 64 bytes"});
    else
      stream->synchronize(5s);
  });
}

TEST(InProcessCommunicator, SkippedStepTimesOutInsteadOfHanging) {
  // Rank 2 of 4 never calls sendRecv: rank 3 (its receiver) must get
  // CommTimeout within the deadline; nobody hangs.
  const auto kTimeout = 300ms;
  auto comms = createInProcessCommunicators(4, kTimeout);
  onEveryRank(comms, [&](int rank) {
    if (rank == 2)
      return;
    auto stream = createStream(Backend::Cpu, "comm");
    std::vector<uint8_t> out(16, uint8_t(rank)), in(16);
    int next = (rank + 1) % 4, prev = (rank + 3) % 4;
    auto start = std::chrono::steady_clock::now();
    comms[rank]->sendRecv({out.data(), out.size(), next, in.data(), in.size(), prev}, *stream);
    if (prev == 2) {
      expectLoomErrorContaining([&] { stream->synchronize(10s); }, ErrorCode::CommTimeout,
                                {"sendRecv", "rank 3", "from rank 2", "300 ms"});
      EXPECT_GE(msSince(start), 290);
      EXPECT_LT(msSince(start), 2000);
    } else {
      stream->synchronize(10s);
    }
  });
  // A collective that rank 2 skips times out on the others, naming rank 2.
  onEveryRank(comms, [&](int rank) {
    if (rank == 2)
      return;
    auto start = std::chrono::steady_clock::now();
    expectLoomErrorContaining([&] { comms[rank]->barrier(); }, ErrorCode::CommTimeout,
                              {"barrier", "rank(s) 2", "300 ms"});
    EXPECT_LT(msSince(start), 2000);
  });
}

TEST(InProcessCommunicator, AbortReachesPendingAndLaterCalls) {
  auto comms = createInProcessCommunicators(3, 10s);
  onEveryRank(comms, [&](int rank) {
    auto start = std::chrono::steady_clock::now();
    if (rank == 1) {
      std::this_thread::sleep_for(50ms);
      comms[1]->abort("out of memory");
      comms[1]->abort("again"); // safe; the first reason stays
      return;
    }
    // Pending: waiting for rank 1's data when the abort arrives.
    auto stream = createStream(Backend::Cpu, "comm");
    std::vector<uint8_t> out(8), in(8);
    comms[rank]->sendRecv({out.data(), 8, 1, in.data(), 8, 1}, *stream);
    expectLoomErrorContaining([&] { stream->synchronize(10s); }, ErrorCode::PeerFailed,
                              {"rank 1 failed: out of memory"});
    EXPECT_LT(msSince(start), 5000); // not the 10 s deadline
    // Later collectives fail the same way, at once.
    expectLoomErrorContaining([&] { comms[rank]->barrier(); }, ErrorCode::PeerFailed,
                              {"rank 1 failed: out of memory"});
  });
}

TEST(InProcessCommunicator, InvalidArgumentsAreRejectedAtOnce) {
  auto comms = createInProcessCommunicators(2, 1s);
  auto stream = createStream(Backend::Cpu, "comm");
  uint8_t byte = 0;
  expectLoomErrorContaining(
      [&] { comms[0]->sendRecv({&byte, 1, 2, &byte, 1, 1}, *stream); },
      ErrorCode::InvalidArgument, {"send peer 2", "size 2"});
  expectLoomErrorContaining(
      [&] { comms[0]->sendRecv({&byte, 1, 1, &byte, 1, -1}, *stream); },
      ErrorCode::InvalidArgument, {"receive peer -1"});
  expectLoomErrorContaining(
      [&] { comms[0]->sendRecv({nullptr, 4, 1, &byte, 1, 1}, *stream); },
      ErrorCode::InvalidArgument, {"null send buffer"});
  expectLoomErrorContaining([] { (void)createInProcessCommunicators(0); },
                            ErrorCode::InvalidArgument, {"world size"});
  stream->synchronize(1s); // nothing was enqueued
}

TEST(NcclCommunicator, WithoutGpuFailsFastWithReason) {
  std::string why;
  if (cuda::driverAvailable(&why) && cuda::deviceCount() > 0)
    GTEST_SKIP() << "a GPU is present; this checks the no-driver path";
  auto comms = createInProcessCommunicators(1, 5s);
  auto start = std::chrono::steady_clock::now();
  expectLoomErrorContaining([&] { (void)createNcclCommunicator(*comms[0], 0, 5s); },
                            ErrorCode::DeviceUnavailable, {"NCCL", "CUDA"});
  EXPECT_LT(msSince(start), 5000);
}

TEST(NcclCommunicator, RingSendRecvAcrossTwoGpus) {
  // The NCCL path of the ring: one thread per GPU, bootstrapped through the
  // in-process communicator, one grouped send/receive on a CUDA stream.
  std::string why;
  int gpus = cuda::driverAvailable(&why) ? cuda::deviceCount() : 0;
  if (gpus < 2)
    GTEST_SKIP() << "needs 2+ CUDA GPUs for NCCL; this machine has " << gpus
                 << (why.empty() ? "" : " (" + why + ")");
  auto bootstrap = createInProcessCommunicators(2, 60s);
  onEveryRank(bootstrap, [&](int r) {
    cuda::Context context(r);
    context.makeCurrent();
    auto nccl = createNcclCommunicator(*bootstrap[size_t(r)], r, 60s);
    auto stream = createStream(Backend::Cuda, "nccl ring");
    std::vector<uint8_t> mine = randomBytes(1 << 16, unsigned(r)), got(mine.size());
    cuda::DeviceBuffer send(mine.size()), recv(mine.size());
    send.copyFromHost(mine.data(), mine.size());
    int peer = 1 - r;
    nccl->sendRecv({reinterpret_cast<const void *>(send.ptr()), mine.size(), peer,
                    reinterpret_cast<void *>(recv.ptr()), got.size(), peer},
                   *stream);
    stream->synchronize(60s);
    recv.copyToHost(got.data(), got.size());
    EXPECT_EQ(got, randomBytes(1 << 16, unsigned(peer))) << "rank " << r;
  });
}
