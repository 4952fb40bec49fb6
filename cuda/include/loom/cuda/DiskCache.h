//===- DiskCache.h - on-disk cache of binary blobs --------------*- C++ -*-===//
//
// Cubins, emu shared objects and autotune results are cached across
// processes. The caller builds the key string from everything the blob
// depends on (IR hash, options, arch, compiler and Loom versions); the file
// name is the SHA-256 of that string, and the full string is stored in the
// entry so a hash collision reads as a miss, never as a wrong binary.
//
// Entry file layout (integers little-endian):
//   "LOOMCACH" | u32 format version | u32 0 | u64 key length | key bytes
//   | u64 payload length | payload | u64 FNV-1a-64 of everything before it
//
// Writers never modify a visible file: they write a unique temp file in the
// same directory, fsync it and rename() it over the entry, so readers see
// either the old or the new complete entry (last writer wins). Anything that
// still fails verification (disk corruption, a truncated copy, a foreign
// file) is reported on stderr once, deleted, and treated as a miss.
//
// getOrBuild() makes a miss single-flight on one node: the builder holds an
// exclusive flock on "<entry>.lock" while it builds and stores the entry;
// other processes (MPI ranks) and threads wait on that lock, with a
// deadline, and then read the entry instead of building it again.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_CUDA_DISKCACHE_H
#define LOOM_CUDA_DISKCACHE_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom::cuda {

/// Lower-case hex SHA-256 of `data`.
std::string sha256Hex(std::string_view data);

/// 64-bit FNV-1a (the entry checksum).
uint64_t fnv1a64(const void *data, size_t size, uint64_t seed = 0xcbf29ce484222325ull);

class DiskCache {
public:
  static constexpr uint32_t kFormatVersion = 1;

  struct Stats {
    uint64_t hits = 0, misses = 0, corrupt = 0, writes = 0;
    /// getOrBuild() calls that found the entry only after taking its lock:
    /// another thread or process built it meanwhile.
    uint64_t waits = 0;
  };
  struct Entry {
    std::string path{};
    std::string key{}; ///< Empty if the entry could not be read.
    uint64_t payloadBytes = 0;
  };

  /// $LOOM_CACHE_DIR, else $HOME/.cache/loom, else /tmp/loom-cache-<uid>.
  static std::string defaultDirectory();

  /// `subdirectory` separates kinds of blobs ("cubin", "emu", "autotune") so
  /// that each can be listed and cleared on its own. Directories are created
  /// lazily on the first put().
  explicit DiskCache(std::string directory = defaultDirectory(), std::string subdirectory = "");

  /// The payload stored under `key`, or nullopt (miss or corrupt entry).
  std::optional<std::vector<uint8_t>> get(const std::string &key);
  /// Stores `bytes` under `key`, atomically replacing any previous entry.
  /// I/O failures throw loom::Error(Internal) naming the path.
  void put(const std::string &key, std::span<const uint8_t> bytes);
  void put(const std::string &key, std::string_view bytes) {
    put(key, std::span(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()));
  }
  /// put(), but an I/O failure (an unwritable or missing cache directory)
  /// is a warning, once per directory and process, instead of an error: the
  /// caller keeps what it built (in memory), it just is not reused by the
  /// next process. Returns whether the entry was stored.
  bool putOrWarn(const std::string &key, std::span<const uint8_t> bytes);
  bool putOrWarn(const std::string &key, std::string_view bytes) {
    return putOrWarn(key,
                     std::span(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()));
  }

  /// What getOrBuild() returns: the payload, and whether this call built it
  /// (false: read from the cache, perhaps after waiting for its builder).
  struct Fetched {
    std::vector<uint8_t> payload{};
    bool built = false;
  };
  /// The entry for `key`; on a miss, takes the entry's lock (waiting at most
  /// `wait` for another builder), reads again (that builder has stored it)
  /// and only on a second miss calls `build` and stores its result. A
  /// builder that throws stores nothing and releases the lock, so the next
  /// waiter builds (and, for a deterministic compile error, fails) itself.
  /// The deadline passing throws loom::Error(CommTimeout) naming the key,
  /// the lock file and the wait.
  Fetched getOrBuild(const std::string &key, const std::function<std::vector<uint8_t>()> &build,
                     std::chrono::milliseconds wait);

  /// Entries (not temp files) currently in the directory.
  std::vector<Entry> list() const;
  /// Removes every entry, stale temp file and lock file; returns the number
  /// removed. (A lock file removed while held only lets one more process
  /// build the same entry: the entries themselves stay atomic.)
  size_t clear();

  /// Path of the entry file for `key` (whether or not it exists).
  std::string pathFor(const std::string &key) const;
  const std::string &directory() const { return dir_; }
  Stats stats() const;

private:
  /// "loom: warning: <reason>; ... kept in memory only", once per directory.
  void warnOnce(const std::string &reason) const;

  std::string dir_;
  std::atomic<uint64_t> hits_{0}, misses_{0}, corrupt_{0}, writes_{0}, waits_{0};
};

} // namespace loom::cuda

#endif
