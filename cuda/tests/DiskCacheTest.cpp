//===- DiskCacheTest.cpp - hits, misses, corruption, concurrency ----------===//

#include "loom/cuda/DiskCache.h"
#include "loom/cuda/FileLock.h"

#include "loom/Support/Error.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace loom::cuda;
namespace fs = std::filesystem;

namespace {

/// A fresh cache directory per test, removed afterwards.
class DiskCacheTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("loom-cache-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  static std::vector<uint8_t> bytes(const std::string &s) { return {s.begin(), s.end()}; }
  static std::vector<uint8_t> readAll(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static void writeAll(const fs::path &p, const std::vector<uint8_t> &d) {
    std::ofstream(p, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char *>(d.data()), d.size());
  }

  fs::path dir;
};

} // namespace

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_F(DiskCacheTest, MissThenHit) {
  DiskCache cache(dir.string(), "cubin");
  EXPECT_FALSE(cache.get("key-a").has_value());
  cache.put("key-a", bytes("payload A"));
  auto got = cache.get("key-a");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, bytes("payload A"));
  EXPECT_FALSE(cache.get("key-b").has_value());

  // Overwrite: last writer wins; empty payloads are valid.
  cache.put("key-a", bytes(""));
  ASSERT_TRUE(cache.get("key-a").has_value());
  EXPECT_TRUE(cache.get("key-a")->empty());

  DiskCache::Stats s = cache.stats();
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.corrupt, 0u);
  EXPECT_EQ(s.writes, 2u);

  auto entries = cache.list();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].key, "key-a");
  EXPECT_EQ(entries[0].path, cache.pathFor("key-a"));
  EXPECT_EQ(cache.clear(), 1u);
  EXPECT_TRUE(cache.list().empty());
  EXPECT_FALSE(cache.get("key-a").has_value());
}

TEST_F(DiskCacheTest, PersistsAcrossInstances) {
  std::vector<uint8_t> blob(100000);
  for (size_t i = 0; i < blob.size(); ++i)
    blob[i] = static_cast<uint8_t>(i * 131 + 7);
  DiskCache(dir.string()).put("big", blob);
  DiskCache other(dir.string());
  auto got = other.get("big");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, blob);
}

TEST_F(DiskCacheTest, CorruptEntriesAreDetectedWarnedRemovedAndRebuilt) {
  DiskCache cache(dir.string());
  const std::string payload(4096, 'x');
  struct Damage {
    const char *name;
    std::function<void(std::vector<uint8_t> &)> apply;
    const char *reason;
  };
  std::vector<Damage> damages = {
      {"flip a payload byte", [](auto &d) { d[d.size() / 2] ^= 0x40; }, "checksum mismatch"},
      {"flip a key byte", [](auto &d) { d[24] ^= 0x01; }, "checksum mismatch"},
      {"truncate", [](auto &d) { d.resize(d.size() - 100); }, "length mismatch"},
      {"truncate to header", [](auto &d) { d.resize(10); }, "truncated"},
      {"bad magic", [](auto &d) { d[0] = 'X'; }, "bad magic"},
  };
  for (const Damage &damage : damages) {
    SCOPED_TRACE(damage.name);
    std::string key = std::string("key-") + damage.name;
    cache.put(key, payload);
    fs::path path = cache.pathFor(key);
    std::vector<uint8_t> data = readAll(path);
    damage.apply(data);
    writeAll(path, data);

    uint64_t corruptBefore = cache.stats().corrupt;
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(cache.get(key).has_value());
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(cache.stats().corrupt, corruptBefore + 1);
    EXPECT_NE(err.find("loom: warning: cache entry " + path.string() + " is corrupt ("),
              std::string::npos)
        << err;
    EXPECT_NE(err.find(damage.reason), std::string::npos) << err;
    EXPECT_NE(err.find("rebuilding"), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(path)) << "corrupt entry not removed";

    // Rebuild: the caller recompiles and puts; the next get hits.
    cache.put(key, payload);
    auto got = cache.get(key);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(std::string(got->begin(), got->end()), payload);

    // The warning is printed once per path per process.
    writeAll(path, {1, 2, 3});
    ::testing::internal::CaptureStderr();
    EXPECT_FALSE(cache.get(key).has_value());
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  }
}

TEST_F(DiskCacheTest, ConcurrentProcessesNeverReadACorruptEntry) {
  // Each writer stores a self-describing payload (writer id, iteration, and
  // a size that differs per write), so a reader can check that what it got
  // is one complete write, whoever wrote it.
  constexpr int kProcesses = 4, kIterations = 50;
  const std::string key = "shared-key";
  auto makePayload = [](int writer, int iter) {
    std::string p = std::to_string(writer) + ":" + std::to_string(iter) + ":";
    p.resize(p.size() + 1000 + (writer * 7919 + iter * 104729) % 50000,
             static_cast<char>('a' + (writer + iter) % 26));
    return p;
  };
  auto valid = [&](const std::vector<uint8_t> &got) {
    std::string s(got.begin(), got.end());
    int writer = 0, iter = 0;
    if (std::sscanf(s.c_str(), "%d:%d:", &writer, &iter) != 2)
      return false;
    return s == makePayload(writer, iter);
  };

  std::vector<pid_t> children;
  for (int w = 0; w < kProcesses; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: no gtest assertions here; report through the exit code.
      int status = 0;
      try {
        DiskCache cache(dir.string());
        for (int i = 0; i < kIterations; ++i) {
          cache.put(key, makePayload(w, i));
          auto got = cache.get(key);
          if (!got || !valid(*got))
            status = 1;
        }
        if (cache.stats().corrupt != 0)
          status = 2;
      } catch (...) {
        status = 3;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: bad/missing read, 2: corrupt seen, 3: exception";
  }
  DiskCache cache(dir.string());
  auto got = cache.get(key);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(valid(*got));
  // No temp files are left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST_F(DiskCacheTest, GetOrBuildBuildsOnceAcrossProcesses) {
  // kProcesses children miss together: the builder waits until every child
  // has announced it is about to ask (an "arrived" file each), plus a
  // moment, so the others miss and wait on its lock instead of finding the
  // entry. Each build appends a byte to `builds`: exactly one must be there.
  constexpr int kProcesses = 4;
  const std::string key = "compiled-kernel";
  const std::string payload(20000, 'k');
  fs::create_directories(dir);
  const fs::path builds = dir / "builds";
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int w = 0; w < kProcesses; ++w) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      try {
        ::close(go[1]);
        char c;
        while (::read(go[0], &c, 1) < 0 && errno == EINTR) {
        }
        std::ofstream(dir / ("arrived-" + std::to_string(w))).put('x');
        DiskCache cache(dir.string(), "cubin");
        auto fetched = cache.getOrBuild(
            key,
            [&] {
              for (int i = 0; i < kProcesses; ++i)
                while (!fs::exists(dir / ("arrived-" + std::to_string(i))))
                  ::usleep(1000);
              ::usleep(100000);
              std::ofstream(builds, std::ios::app).put('b');
              return bytes(payload);
            },
            std::chrono::seconds(20));
        if (fetched.payload != bytes(payload))
          status = 1;
      } catch (...) {
        status = 2;
      }
      ::_exit(status);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]); // EOF releases every child at once
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: wrong payload, 2: exception";
  }
  EXPECT_EQ(readAll(builds).size(), 1u) << "the entry was built more than once";
}

TEST_F(DiskCacheTest, GetOrBuildTimesOutNamingTheKeyWhileTheLockIsHeld) {
  DiskCache cache(dir.string(), "cubin");
  // flock locks belong to the open file description: this one excludes the
  // getOrBuild below though it runs on the same thread, as another
  // process's would.
  std::string lockPath = cache.pathFor("stuck-key") + ".lock";
  auto held = FileLock::acquire(lockPath, std::chrono::milliseconds(0));
  ASSERT_TRUE(held.has_value());
  bool built = false;
  auto start = std::chrono::steady_clock::now();
  try {
    cache.getOrBuild(
        "stuck-key", [&] { return built = true, bytes("x"); }, std::chrono::milliseconds(300));
    ADD_FAILURE() << "expected a timeout";
  } catch (const loom::Error &e) {
    EXPECT_EQ(e.code(), loom::ErrorCode::CommTimeout);
    EXPECT_EQ(std::string(e.what()),
              "cache: waited 300 ms for another thread or process to build entry stuck-key (lock " +
                  lockPath +
                  " still held); set LOOM_COMPILE_WAIT_TIMEOUT (seconds) to wait longer");
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  EXPECT_FALSE(built);
  // Once the holder lets go, the next call builds.
  held.reset();
  auto fetched = cache.getOrBuild("stuck-key", [&] { return bytes("x"); }, std::chrono::seconds(1));
  EXPECT_TRUE(fetched.built);
  EXPECT_EQ(fetched.payload, bytes("x"));
}

TEST_F(DiskCacheTest, GetOrBuildFailureStoresNothingAndTheNextCallBuilds) {
  DiskCache cache(dir.string(), "emu");
  auto fail = []() -> std::vector<uint8_t> {
    throw loom::Error(loom::ErrorCode::CompileFailed, "compile of k failed");
  };
  EXPECT_THROW(cache.getOrBuild("k", fail, std::chrono::seconds(1)), loom::Error);
  EXPECT_FALSE(cache.get("k").has_value());
  // The failed builder released the lock: no wait, a build.
  auto fetched = cache.getOrBuild("k", [] { return bytes("ok"); }, std::chrono::seconds(1));
  EXPECT_TRUE(fetched.built);
  auto again = cache.getOrBuild("k", [] { return bytes("rebuilt?"); }, std::chrono::seconds(1));
  EXPECT_FALSE(again.built);
  EXPECT_EQ(again.payload, bytes("ok"));
  // clear() removes the lock file with the entry.
  EXPECT_EQ(cache.clear(), 2u);
  EXPECT_TRUE(fs::is_empty(cache.directory()));
}
