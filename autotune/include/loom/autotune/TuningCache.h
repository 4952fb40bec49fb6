//===- TuningCache.h - persistent, shareable tuning results -----*- C++ -*-===//
//
// Tuning results live in JSON files under $LOOM_CACHE_DIR/autotune/ (see
// cuda::DiskCache::defaultDirectory()), one file per kind of device:
//
//   <model>-<arch>-<hash of the device key>.json
//   {
//     "checksum": "fnv1a64:<16 hex>",   // over the canonical text without it
//     "device": {"backend", "model", "arch", "driver", "nvrtc", "loom"},
//     "entries": {
//       "<kernel identity>@<shape bucket>": {
//         "config": {"blockM": 64, ...}, "ms": 0.41, "timed": 6, "pruned": 2,
//         "failed": 0, "world": 4, "tunedAt": "2025-01-01T00:00:00Z"
//       }, ...
//     },
//     "format": "loom-autotune-1"
//   }
//
// Because the device key names everything a result depends on (device model,
// arch, driver and NVRTC versions, Loom version), a file tuned on one node is
// valid on every node of the same kind: copy it into their cache directory.
//
// Concurrency: store() takes an exclusive flock on "<file>.lock", re-reads
// the file, merges its entry, writes a unique temp file, fsyncs it and
// rename()s it over the file, so concurrent tuners (processes or threads)
// merge their entries instead of clobbering each other, and readers (which
// take no lock) see either the old or the new complete file.
//
// Corruption (unparsable JSON, wrong checksum, wrong shape) is reported on
// stderr once per file and process, and the file is treated as empty; the
// next store() replaces it.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_TUNINGCACHE_H
#define LOOM_AUTOTUNE_TUNINGCACHE_H

#include "loom/autotune/ConfigSpace.h"
#include "loom/runtime/Kernel.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom::autotune {

/// The kind of device a result was tuned on. Two nodes share results iff
/// their keys are equal.
struct DeviceKey {
  std::string backend; ///< "cpu", "emu", "cuda"
  std::string model;   ///< GPU name, or the CPU model and its thread count
  std::string arch;    ///< "sm_80", or the CPU architecture
  std::string driver;  ///< CUDA driver version, "none" without one
  std::string nvrtc;   ///< "NVRTC 13.0"
  std::string loom;    ///< Loom version

  /// Every field, '|'-separated.
  std::string id() const;
  bool operator==(const DeviceKey &) const = default;
};

/// The key of the device `backend` runs on (Auto resolved). For cuda this
/// queries device 0 through the driver; cpu and emu read /proc/cpuinfo.
/// Computed once per backend and process.
DeviceKey currentDeviceKey(runtime::Backend backend);

struct CacheEntry {
  Config config;
  double ms = 0;      ///< The winner's median time.
  int timed = 0;      ///< Configs timed (on all ranks).
  int pruned = 0;     ///< Configs dropped before timing.
  int failed = 0;     ///< Configs that failed or gave wrong output.
  int world = 1;      ///< Ranks that tuned it.
  std::string tunedAt; ///< UTC, ISO 8601.
};

class TuningCache {
public:
  /// <DiskCache::defaultDirectory()>/autotune.
  static std::string defaultDirectory();
  explicit TuningCache(std::string directory = defaultDirectory());

  /// The entry for `entryKey` in `device`'s file, or nullopt (no file, no
  /// entry, corrupt file). No lock taken; parsed files are kept in memory
  /// and re-read only when their size, mtime or inode change.
  std::optional<CacheEntry> lookup(const DeviceKey &device, const std::string &entryKey) const;
  /// Adds or replaces `entryKey` (locked read-merge-write, atomic rename).
  /// Throws loom::Error(Internal) naming the path on I/O failure.
  void store(const DeviceKey &device, const std::string &entryKey, const CacheEntry &entry);
  /// Why store() for `device` would fail (the directory cannot be created
  /// or the file's lock not opened, with errno's reason), or "" when it can
  /// write: checked before tuning so no timing is lost to it.
  std::string whyUnwritable(const DeviceKey &device) const;

  std::string pathFor(const DeviceKey &device) const;
  const std::string &directory() const { return dir_; }

  struct FileInfo {
    std::string path;
    bool valid = false;
    std::string error; ///< Why it is invalid.
    DeviceKey device;
    std::map<std::string, CacheEntry> entries;
  };
  /// Every *.json file of the directory, sorted by path.
  std::vector<FileInfo> list() const;
  /// Removes every cache and temp file (lock files stay); returns the number of cache
  /// files removed.
  size_t clear();

  /// Parses a cache file's text; throws std::runtime_error saying what is
  /// wrong. Exposed for tests and `loom cache list`.
  static FileInfo parse(const std::string &text);
  /// The text store() writes.
  static std::string serialize(const DeviceKey &device,
                               const std::map<std::string, CacheEntry> &entries);

private:
  std::string dir_;
};

/// False when $LOOM_AUTOTUNE is "0", "off" or "false": production calls
/// then never consult the cache.
bool cacheLookupsEnabled();

} // namespace loom::autotune

#endif
