//===- FileLock.cpp - an exclusive flock with a deadline ------------------===//
#include "loom/cuda/FileLock.h"

#include "loom/Support/Error.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

namespace loom::cuda {

std::optional<FileLock> FileLock::acquire(const std::string &path,
                                          std::chrono::milliseconds timeout) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(ErrorCode::Internal,
                "cache: cannot open lock file " + path + ": " + std::strerror(errno));
  // flock has no timed form: poll, backing off from 1 ms (a waiter should
  // notice a short compile finishing) to 50 ms (and not spin on a long one).
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0)
      return FileLock(fd);
    int err = errno;
    if (err != EWOULDBLOCK && err != EINTR) {
      ::close(fd);
      throw Error(ErrorCode::Internal,
                  "cache: cannot lock " + path + ": " + std::strerror(err));
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      ::close(fd);
      return std::nullopt;
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0)
    ::close(fd_); // closing the last descriptor of the description unlocks it
}

std::chrono::milliseconds compileWaitTimeout() {
  const char *env = std::getenv("LOOM_COMPILE_WAIT_TIMEOUT");
  if (!env || !*env)
    return std::chrono::seconds(600);
  char *end = nullptr;
  long long seconds = std::strtoll(env, &end, 10);
  if (*end || seconds < 1)
    throw Error(ErrorCode::InvalidArgument,
                std::string("LOOM_COMPILE_WAIT_TIMEOUT must be a positive number of seconds, "
                            "got '") +
                    env + "'");
  return std::chrono::seconds(seconds);
}

} // namespace loom::cuda
