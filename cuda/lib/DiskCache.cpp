//===- DiskCache.cpp - atomic, checksummed blob cache ---------------------===//

#include "loom/cuda/DiskCache.h"

#include "loom/cuda/FileLock.h"

#include "loom/Support/Error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace fs = std::filesystem;

namespace loom::cuda {
namespace {

constexpr char kMagic[8] = {'L', 'O', 'O', 'M', 'C', 'A', 'C', 'H'};
constexpr const char *kEntrySuffix = ".bin";
constexpr const char *kTempPrefix = ".tmp-";
constexpr const char *kLockSuffix = ".lock";

void appendU32(std::vector<uint8_t> &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void appendU64(std::vector<uint8_t> &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t readU64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= uint64_t(p[i]) << (8 * i);
  return v;
}
uint32_t readU32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

std::optional<std::vector<uint8_t>> readFile(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  std::vector<uint8_t> data;
  uint8_t buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    data.insert(data.end(), buf, buf + n);
  }
  ::close(fd);
  return data;
}

/// A decoded entry, or the reason it is not one.
struct Decoded {
  std::string key{};
  std::span<const uint8_t> payload{};
  std::string error{};
};

Decoded decode(const std::vector<uint8_t> &d) {
  Decoded out;
  constexpr size_t kHeader = sizeof(kMagic) + 4 + 4 + 8;
  if (d.size() < kHeader + 8 + 8)
    return {.error = "truncated: " + std::to_string(d.size()) + " bytes"};
  if (std::memcmp(d.data(), kMagic, sizeof(kMagic)) != 0)
    return {.error = "bad magic"};
  if (uint32_t v = readU32(d.data() + 8); v != DiskCache::kFormatVersion)
    return {.error = "format version " + std::to_string(v) + ", expected " +
                     std::to_string(DiskCache::kFormatVersion)};
  uint64_t keyLen = readU64(d.data() + 16);
  if (keyLen > d.size() - kHeader - 16)
    return {.error = "truncated key"};
  size_t pos = kHeader + keyLen;
  uint64_t payloadLen = readU64(d.data() + pos);
  pos += 8;
  if (payloadLen != d.size() - pos - 8)
    return {.error = "length mismatch: header says " + std::to_string(payloadLen) +
                     " payload bytes, file holds " + std::to_string(d.size() - pos - 8)};
  uint64_t stored = readU64(d.data() + d.size() - 8);
  if (fnv1a64(d.data(), d.size() - 8) != stored)
    return {.error = "checksum mismatch"};
  out.key.assign(reinterpret_cast<const char *>(d.data() + kHeader), keyLen);
  out.payload = std::span(d.data() + pos, payloadLen);
  return out;
}

/// One warning per corrupt path per process: a damaged shared cache must
/// not flood the logs of every kernel launch.
void warnCorrupt(const std::string &path, const std::string &reason) {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard lock(mutex);
  if (warned.insert(path).second)
    std::fprintf(stderr, "loom: warning: cache entry %s is corrupt (%s); rebuilding\n",
                 path.c_str(), reason.c_str());
}

[[noreturn]] void ioError(const std::string &what, const std::string &path, int err) {
  throw Error(ErrorCode::Internal, "cache: " + what + " " + path + ": " + std::strerror(err));
}

void writeAll(int fd, const uint8_t *p, size_t n, const std::string &path) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      ioError("cannot write", path, err);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

/// Unique among processes (pid), threads (thread id) and repeated calls
/// (random bits), so two writers never share a temp file.
std::string tempName(const std::string &entryName) {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id())};
  char suffix[80];
  std::snprintf(suffix, sizeof(suffix), "%d-%zx-%016llx", static_cast<int>(::getpid()),
                std::hash<std::thread::id>{}(std::this_thread::get_id()),
                static_cast<unsigned long long>(rng()));
  return kTempPrefix + entryName + "-" + suffix;
}

std::string durationText(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}

} // namespace

uint64_t fnv1a64(const void *data, size_t size, uint64_t seed) {
  const auto *p = static_cast<const uint8_t *>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string DiskCache::defaultDirectory() {
  if (const char *dir = std::getenv("LOOM_CACHE_DIR"); dir && *dir)
    return dir;
  if (const char *home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "loom").string();
  return "/tmp/loom-cache-" + std::to_string(::getuid());
}

DiskCache::DiskCache(std::string directory, std::string subdirectory)
    : dir_(subdirectory.empty() ? std::move(directory)
                                : (fs::path(directory) / subdirectory).string()) {}

std::string DiskCache::pathFor(const std::string &key) const {
  return (fs::path(dir_) / (sha256Hex(key) + kEntrySuffix)).string();
}

std::optional<std::vector<uint8_t>> DiskCache::get(const std::string &key) {
  std::string path = pathFor(key);
  std::optional<std::vector<uint8_t>> data = readFile(path);
  if (!data) {
    ++misses_;
    return std::nullopt;
  }
  Decoded entry = decode(*data);
  if (entry.error.empty() && entry.key != key)
    entry.error = "stored key differs from the requested key";
  if (!entry.error.empty()) {
    ++corrupt_;
    ++misses_;
    warnCorrupt(path, entry.error);
    ::unlink(path.c_str()); // a concurrent writer may already have replaced it; fine
    return std::nullopt;
  }
  ++hits_;
  return std::vector<uint8_t>(entry.payload.begin(), entry.payload.end());
}

void DiskCache::put(const std::string &key, std::span<const uint8_t> bytes) {
  std::vector<uint8_t> blob;
  blob.reserve(sizeof(kMagic) + 32 + key.size() + bytes.size());
  blob.insert(blob.end(), kMagic, kMagic + sizeof(kMagic));
  appendU32(blob, kFormatVersion);
  appendU32(blob, 0);
  appendU64(blob, key.size());
  blob.insert(blob.end(), key.begin(), key.end());
  appendU64(blob, bytes.size());
  blob.insert(blob.end(), bytes.begin(), bytes.end());
  appendU64(blob, fnv1a64(blob.data(), blob.size()));

  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    ioError("cannot create directory", dir_, ec.value());
  std::string path = pathFor(key);
  std::string tmp = (fs::path(dir_) / tempName(fs::path(path).filename().string())).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    ioError("cannot create", tmp, errno);
  writeAll(fd, blob.data(), blob.size(), tmp);
  // fsync before rename: otherwise a crash can leave the new name pointing
  // at an empty or partial file on some filesystems.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ioError("cannot flush", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    ioError("cannot rename into", path, err);
  }
  // Persist the directory entry too (best effort; not all filesystems allow it).
  if (int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  ++writes_;
}

DiskCache::Fetched DiskCache::getOrBuild(const std::string &key,
                                         const std::function<std::vector<uint8_t>()> &build,
                                         std::chrono::milliseconds wait) {
  if (auto hit = get(key))
    return {std::move(*hit), false};
  std::string lockPath = pathFor(key) + kLockSuffix;
  // No lock file (an unwritable cache directory): build here and keep the
  // result in memory only, as putOrWarn does.
  std::string noLockFile;
  std::optional<FileLock> lock = [&]() -> std::optional<FileLock> {
    try {
      return FileLock::acquire(lockPath, wait);
    } catch (const Error &e) {
      noLockFile = e.what();
      return std::nullopt;
    }
  }();
  if (!noLockFile.empty()) {
    warnOnce(noLockFile);
    return {build(), true};
  }
  if (!lock)
    throw Error(ErrorCode::CommTimeout,
                "cache: waited " + durationText(wait) +
                    " for another thread or process to build entry " + key + " (lock " +
                    lockPath + " still held); set LOOM_COMPILE_WAIT_TIMEOUT (seconds) to wait "
                    "longer");
  if (auto hit = get(key)) {
    ++waits_;
    return {std::move(*hit), false};
  }
  std::vector<uint8_t> payload = build();
  putOrWarn(key, payload);
  return {std::move(payload), true};
}

void DiskCache::warnOnce(const std::string &reason) const {
  static std::mutex mutex;
  static std::set<std::string> warned;
  std::lock_guard lock(mutex);
  if (warned.insert(dir_).second)
    std::fprintf(stderr,
                 "loom: warning: %s; compiled kernels are kept in memory only (set "
                 "LOOM_CACHE_DIR to a writable directory to reuse them)\n",
                 reason.c_str());
}

bool DiskCache::putOrWarn(const std::string &key, std::span<const uint8_t> bytes) {
  try {
    put(key, bytes);
    return true;
  } catch (const Error &e) {
    warnOnce(e.what());
    return false;
  }
}

std::vector<DiskCache::Entry> DiskCache::list() const {
  std::vector<Entry> out;
  std::error_code ec;
  for (const fs::directory_entry &e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (!e.is_regular_file(ec) || !name.ends_with(kEntrySuffix) || name.starts_with(kTempPrefix))
      continue;
    Entry entry{.path = e.path().string()};
    if (auto data = readFile(entry.path)) {
      Decoded d = decode(*data);
      if (d.error.empty()) {
        entry.key = d.key;
        entry.payloadBytes = d.payload.size();
      }
    }
    out.push_back(std::move(entry));
  }
  return out;
}

size_t DiskCache::clear() {
  size_t removed = 0;
  std::error_code ec;
  for (const fs::directory_entry &e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && (name.ends_with(kEntrySuffix) || name.ends_with(kLockSuffix) ||
                                  name.starts_with(kTempPrefix)))
      removed += fs::remove(e.path(), ec) ? 1 : 0;
  }
  return removed;
}

DiskCache::Stats DiskCache::stats() const {
  return {hits_.load(), misses_.load(), corrupt_.load(), writes_.load(), waits_.load()};
}

//===- SHA-256 (FIPS 180-4) ------------------------------------------------===//

std::string sha256Hex(std::string_view data) {
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };

  std::vector<uint8_t> msg(data.begin(), data.end());
  uint64_t bitLen = uint64_t(data.size()) * 8;
  msg.push_back(0x80);
  while (msg.size() % 64 != 56)
    msg.push_back(0);
  for (int i = 7; i >= 0; --i)
    msg.push_back(static_cast<uint8_t>(bitLen >> (8 * i)));

  for (size_t block = 0; block < msg.size(); block += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const uint8_t *p = &msg[block + 4 * i];
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + s1 + ch + k[i] + w[i];
      uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = s0 + maj;
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (uint32_t v : h)
    for (int i = 28; i >= 0; i -= 4)
      out.push_back(hex[(v >> i) & 0xf]);
  return out;
}

} // namespace loom::cuda
