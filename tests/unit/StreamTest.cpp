//===- StreamTest.cpp - CPU streams/events and the CUDA stream probe ------===//
#include "loom/cuda/Driver.h"
#include "loom/runtime/Stream.h"

#include "ExpectError.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using namespace loom;
using namespace loom::runtime;
using namespace std::chrono_literals;

TEST(CpuStream, RunsWorkInSubmissionOrder) {
  auto stream = createStream(Backend::Cpu, "order");
  EXPECT_EQ(stream->name(), "order");
  EXPECT_EQ(stream->backend(), Backend::Cpu);
  std::vector<int> seen;
  for (int i = 0; i < 200; ++i)
    stream->submit([&seen, i](const StreamContext &context) {
      EXPECT_EQ(context.nativeStream, nullptr);
      seen.push_back(i);
    });
  stream->synchronize(5s);
  ASSERT_EQ(seen.size(), 200u);
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(seen[i], i);
}

TEST(CpuStream, EmuBackendIsACpuStream) {
  auto stream = createStream(Backend::Emu, "emu");
  EXPECT_EQ(stream->backend(), Backend::Emu);
  bool ran = false;
  stream->submit([&](const StreamContext &) { ran = true; });
  stream->synchronize(5s);
  EXPECT_TRUE(ran);
}

TEST(CpuStream, CrossStreamWaitOrdersWork) {
  // B's work must see A's write although A sleeps first: B waits on an
  // event recorded after A's job.
  auto a = createStream(Backend::Cpu, "A"), b = createStream(Backend::Cpu, "B");
  std::atomic<int> value{0};
  int observed = -1;
  a->submit([&](const StreamContext &) {
    std::this_thread::sleep_for(50ms);
    value = 42;
  });
  auto done = a->record();
  EXPECT_FALSE(done->query());
  b->wait(done);
  b->submit([&](const StreamContext &) { observed = value.load(); });
  b->synchronize(5s);
  EXPECT_EQ(observed, 42);
  EXPECT_TRUE(done->query());
}

TEST(CpuStream, WorkErrorPropagatesToSynchronizeEventsAndWaiters) {
  auto a = createStream(Backend::Cpu, "failing"), b = createStream(Backend::Cpu, "waiter");
  auto before = a->record();
  a->submit([](const StreamContext &) { throw Error(ErrorCode::InvalidArgument, "bad block"); });
  bool skipped = true;
  a->submit([&](const StreamContext &) { skipped = false; });
  auto after = a->record();
  before->synchronize(5s); // recorded before the failure: fine
  expectLoomError([&] { after->synchronize(5s); }, "bad block");
  expectLoomError([&] { a->synchronize(5s); }, "bad block");
  expectLoomError([&] { a->synchronize(5s); }, "bad block"); // sticky
  EXPECT_TRUE(skipped);
  // A stream waiting on the failed event fails with the same error.
  bool ranOnB = false;
  b->wait(after);
  b->submit([&](const StreamContext &) { ranOnB = true; });
  expectLoomError([&] { b->synchronize(5s); }, "bad block");
  EXPECT_FALSE(ranOnB);
}

TEST(CpuStream, SynchronizeTimesOut) {
  auto stream = createStream(Backend::Cpu, "slow");
  stream->submit([](const StreamContext &) { std::this_thread::sleep_for(300ms); });
  auto start = std::chrono::steady_clock::now();
  expectLoomErrorContaining([&] { stream->synchronize(50ms); }, ErrorCode::CommTimeout,
                            {"50 ms", "slow"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 250ms);
  auto event = stream->record();
  expectLoomErrorContaining([&] { event->synchronize(10ms, "block 3"); }, ErrorCode::CommTimeout,
                            {"10 ms", "block 3"});
  stream->synchronize(5s);
}

TEST(CpuStream, EventTimesAreMonotone) {
  auto stream = createStream(Backend::Cpu, "timeline");
  double t0 = nowMs();
  auto first = stream->record();
  stream->submit([](const StreamContext &) { std::this_thread::sleep_for(20ms); });
  auto second = stream->record();
  expectLoomErrorContaining([&] { (void)second->completedAtMs(); }, ErrorCode::InvalidArgument,
                            {"not complete"});
  second->synchronize(5s);
  EXPECT_LE(t0, first->completedAtMs());
  EXPECT_LE(first->completedAtMs(), second->completedAtMs());
  EXPECT_LE(second->completedAtMs(), nowMs());
  EXPECT_GE(second->elapsedMsSince(*first), 19.0);
  EXPECT_EQ(first->nativeEvent(), nullptr);
}

TEST(CpuStream, DestructionDrainsQueuedWork) {
  int ran = 0;
  std::shared_ptr<Event> last;
  {
    auto stream = createStream(Backend::Cpu, "drain");
    for (int i = 0; i < 10; ++i)
      stream->submit([&](const StreamContext &) { ++ran; });
    last = stream->record();
  }
  EXPECT_EQ(ran, 10);
  last->synchronize(0ms);
}

TEST(CpuStream, SynchronizeFromOwnWorkIsAnError) {
  auto stream = createStream(Backend::Cpu, "self");
  Stream *raw = stream.get();
  raw->submit([raw](const StreamContext &) { raw->synchronize(1s); });
  expectLoomErrorContaining([&] { stream->synchronize(5s); }, ErrorCode::InvalidArgument,
                            {"self"});
}

TEST(CudaStream, WithoutDriverCreationThrowsDeviceUnavailable) {
  std::string why;
  if (cuda::driverAvailable(&why))
    GTEST_SKIP() << "a CUDA driver is present; this checks the no-driver path";
  auto start = std::chrono::steady_clock::now();
  expectLoomErrorContaining([] { (void)createStream(Backend::Cuda, "gpu"); },
                            ErrorCode::DeviceUnavailable, {"CUDA driver", "gpu"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(CudaStream, EventsOrderAndTime) {
  if (cuda::deviceCount() == 0)
    GTEST_SKIP() << "no CUDA device";
  cuda::Context context(0);
  auto a = createStream(Backend::Cuda, "A"), b = createStream(Backend::Cuda, "B");
  cuda::DeviceBuffer buf(1 << 20);
  auto start = a->record();
  a->submit([&](const StreamContext &c) {
    std::vector<uint8_t> host(1 << 20, 7);
    buf.copyFromHost(host.data(), host.size(), static_cast<CUstream>(c.nativeStream));
    cuda::driver().streamSynchronize(static_cast<CUstream>(c.nativeStream));
  });
  auto end = a->record();
  b->wait(end);
  b->synchronize(10s);
  EXPECT_TRUE(end->query());
  EXPECT_GE(end->elapsedMsSince(*start), 0.0);
  EXPECT_NE(end->nativeEvent(), nullptr);
}
