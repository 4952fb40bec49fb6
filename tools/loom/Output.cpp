//===- Output.cpp ---------------------------------------------------------===//
#include "Output.h"

#include "loom/Support/Error.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace loom::cli {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void cannotWrite(const std::string &command, const OutputPath &o,
                              const std::string &reason) {
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("{}: cannot write {} '{}': {}", command, o.option, o.path, reason));
}

/// A new, exclusive file beside `path` (same directory, so rename is
/// atomic), created with mode 0666 less the umask like any new file.
/// Returns the descriptor and sets `temp`, or -1 with errno set.
int createTemporary(const std::string &path, std::string &temp) {
  static std::atomic<unsigned> counter{0};
  fs::path p(path);
  std::string dir = p.has_parent_path() ? p.parent_path().string() + "/" : "";
  for (int attempt = 0; attempt < 100; ++attempt) {
    temp = fmt::format("{}.{}.loom-tmp.{}.{}", dir, p.filename().string(), ::getpid(),
                       counter++);
    int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  errno = EEXIST;
  return -1;
}

/// Why `o.path` cannot be written, or "" when it can.
std::string unwritableReason(const OutputPath &o) {
  if (o.path.empty())
    return "the path is empty";
  struct stat st;
  if (::stat(o.path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return std::strerror(EISDIR);
    if (::access(o.path.c_str(), W_OK) != 0)
      return std::strerror(errno);
  }
  std::string temp;
  int fd = createTemporary(o.path, temp);
  if (fd < 0)
    return std::strerror(errno);
  ::close(fd);
  ::unlink(temp.c_str());
  return "";
}
} // namespace

void checkOutputs(const std::string &command, const std::vector<OutputPath> &outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (std::string why = unwritableReason(outputs[i]); !why.empty())
      cannotWrite(command, outputs[i], why);
    std::error_code ea;
    fs::path a = fs::weakly_canonical(outputs[i].path, ea);
    for (size_t j = 0; j < i; ++j) {
      std::error_code eb;
      fs::path b = fs::weakly_canonical(outputs[j].path, eb);
      if (outputs[i].path == outputs[j].path || (!ea && !eb && a == b))
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{}: {} and {} name the same file '{}'", command,
                                outputs[j].option, outputs[i].option, outputs[i].path));
    }
  }
}

AtomicFile::AtomicFile(std::string command, OutputPath output)
    : command_(std::move(command)), output_(std::move(output)) {
  fd_ = createTemporary(output_.path, temp_);
  if (fd_ < 0)
    fail(errno);
}

AtomicFile::AtomicFile(AtomicFile &&other) noexcept
    : command_(std::move(other.command_)), output_(std::move(other.output_)),
      temp_(std::move(other.temp_)), fd_(other.fd_) {
  other.fd_ = -1;
  other.temp_.clear();
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0)
    ::close(fd_);
  if (!temp_.empty())
    ::unlink(temp_.c_str());
}

void AtomicFile::fail(int error) const { cannotWrite(command_, output_, std::strerror(error)); }

void AtomicFile::write(const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      fail(n < 0 ? errno : EIO);
    p += n;
    size -= size_t(n);
  }
}

void AtomicFile::commit() {
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    fail(errno);
  if (::rename(temp_.c_str(), output_.path.c_str()) != 0)
    fail(errno);
  temp_.clear();
}

void writeOutputs(const std::string &command,
                  std::vector<std::pair<OutputPath, std::string>> files) {
  std::vector<AtomicFile> staged;
  staged.reserve(files.size());
  for (auto &[output, bytes] : files) {
    staged.emplace_back(command, output);
    staged.back().write(bytes.data(), bytes.size());
  }
  for (AtomicFile &f : staged)
    f.commit();
}

} // namespace loom::cli
