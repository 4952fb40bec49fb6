//===- MpiCommunicatorTest.cpp - the MPI communicator under mpirun --------===//
//
// Run by ctest as `mpirun -n 2|4 loom-mpi-comm-test`: every rank runs the
// same tests in the same order (each creates its own communicator, a
// collective call). Only rank 0 prints gtest's progress; every rank's exit
// status counts, so a failure on any rank fails the ctest test.
//
//===----------------------------------------------------------------------===//
#include "loom/runtime/Communicator.h"

#include "ExpectError.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

using namespace loom;
using namespace loom::runtime;
using namespace std::chrono_literals;

namespace {

std::vector<uint8_t> payload(int rank, int step) {
  std::mt19937 rng(unsigned(rank * 1000 + step));
  std::vector<uint8_t> out(size_t((step * 997 + rank * 131) % 5000));
  for (auto &b : out)
    b = uint8_t(rng());
  return out;
}

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

} // namespace

TEST(MpiCommunicator, RingSendRecvIsByteExact) {
  ASSERT_TRUE(launchedByMpi());
  auto comm = createMpiCommunicator(20s);
  EXPECT_STREQ(comm->transport(), "mpi");
  int rank = comm->rank(), world = comm->size();
  int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  auto stream = createStream(Backend::Cpu, "comm");
  const int kSteps = 30;
  std::vector<std::vector<uint8_t>> sent(kSteps), received(kSteps);
  for (int step = 0; step < kSteps; ++step) {
    sent[step] = payload(rank, step);
    received[step].assign(payload(prev, step).size(), 0xEE);
    comm->sendRecv({sent[step].data(), sent[step].size(), next, received[step].data(),
                    received[step].size(), prev},
                   *stream);
  }
  stream->synchronize(20s);
  for (int step = 0; step < kSteps; ++step)
    EXPECT_EQ(received[step], payload(prev, step)) << "rank " << rank << " step " << step;
  comm->barrier();
}

TEST(MpiCommunicator, AllgatherOfDifferentSizes) {
  auto comm = createMpiCommunicator(20s);
  for (int round = 0; round < 3; ++round) {
    auto all = comm->allgather(payload(comm->rank(), round));
    ASSERT_EQ(int(all.size()), comm->size());
    for (int r = 0; r < comm->size(); ++r)
      EXPECT_EQ(all[r], payload(r, round)) << "round " << round << " from " << r;
  }
  comm->barrier();
}

TEST(MpiCommunicator, SizeMismatchNamesBothSizes) {
  auto comm = createMpiCommunicator(20s);
  int rank = comm->rank(), world = comm->size();
  int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  auto stream = createStream(Backend::Cpu, "comm");
  // Rank 0 sends 100 bytes where its receiver expects 64.
  std::vector<uint8_t> out(rank == 0 ? 100 : 64), in(64);
  comm->sendRecv({out.data(), out.size(), next, in.data(), in.size(), prev}, *stream);
  if (prev == 0)
    expectLoomErrorContaining([&] { stream->synchronize(20s); }, ErrorCode::InvalidArgument,
                              {"rank 0 sent 100 bytes", "expects 64 bytes"});
  else
    stream->synchronize(20s);
  comm->barrier();
}

TEST(MpiCommunicator, AbortReachesTheWaitingPeer) {
  auto comm = createMpiCommunicator(20s);
  int rank = comm->rank(), world = comm->size();
  int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  if (rank == 1) {
    comm->abort("out of memory");
    comm->abort("again");
    expectLoomErrorContaining([&] { comm->barrier(); }, ErrorCode::PeerFailed,
                              {"rank 1 failed: out of memory"});
    return;
  }
  auto stream = createStream(Backend::Cpu, "comm");
  std::vector<uint8_t> out(32), in(32);
  auto start = std::chrono::steady_clock::now();
  comm->sendRecv({out.data(), out.size(), next, in.data(), in.size(), prev}, *stream);
  if (prev == 1) {
    expectLoomErrorContaining([&] { stream->synchronize(20s); }, ErrorCode::PeerFailed,
                              {"rank 1 failed: out of memory"});
  } else {
    // The abort reaches every rank: a transfer that did not finish before
    // it arrived fails the same way instead of waiting for the deadline.
    try {
      stream->synchronize(20s);
    } catch (const Error &e) {
      EXPECT_EQ(e.code(), ErrorCode::PeerFailed) << e.what();
      EXPECT_NE(std::string(e.what()).find("rank 1 failed: out of memory"), std::string::npos);
    }
  }
  EXPECT_LT(msSince(start), 10000); // well before the 20 s deadline
}

TEST(MpiCommunicator, SkippedStepTimesOutThenAllExitCleanly) {
  // Runs last: rank 1 skips a step, so its peers' sequence numbers stay
  // out of step with it on this communicator.
  const auto kTimeout = 500ms;
  auto comm = createMpiCommunicator(20s);
  comm->setTimeout(kTimeout);
  int rank = comm->rank(), world = comm->size();
  int next = (rank + 1) % world, prev = (rank + world - 1) % world;
  if (rank != 1) {
    auto stream = createStream(Backend::Cpu, "comm");
    std::vector<uint8_t> out(64, uint8_t(rank)), in(64);
    auto start = std::chrono::steady_clock::now();
    comm->sendRecv({out.data(), out.size(), next, in.data(), in.size(), prev}, *stream);
    if (prev == 1) {
      expectLoomErrorContaining([&] { stream->synchronize(20s); }, ErrorCode::CommTimeout,
                                {"mpi sendRecv", "from rank 1", "500 ms"});
      EXPECT_GE(msSince(start), 490);
      EXPECT_LT(msSince(start), 5000);
    } else {
      stream->synchronize(20s);
    }
  }
  comm->setTimeout(20s);
  comm->barrier();
}

namespace {
/// Other ranks print only their failures, tagged with the rank.
class FailurePrinter : public testing::EmptyTestEventListener {
public:
  explicit FailurePrinter(std::string rank) : rank_(std::move(rank)) {}
  void OnTestPartResult(const testing::TestPartResult &result) override {
    if (result.failed())
      std::fprintf(stderr, "[rank %s] %s:%d: failure\n%s\n", rank_.c_str(),
                   result.file_name() ? result.file_name() : "?", result.line_number(),
                   result.summary());
  }

private:
  std::string rank_;
};
} // namespace

int main(int argc, char **argv) {
  testing::InitGoogleTest(&argc, argv);
  // MPI is initialized by the first communicator; the rank is in the
  // launcher's environment already.
  const char *rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank && std::string(rank) != "0") {
    auto &listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  return RUN_ALL_TESTS();
}
