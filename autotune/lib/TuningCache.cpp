//===- TuningCache.cpp - JSON tuning results, locked merge, atomic write --===//
#include "loom/autotune/TuningCache.h"

#include "loom/Support/Error.h"
#include "loom/Version.h"
#include "loom/autotune/Json.h"
#include "loom/cuda/DiskCache.h"
#include "loom/cuda/Driver.h"
#include "loom/cuda/Nvrtc.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>

namespace loom::autotune {

static constexpr const char *kFormat = "loom-autotune-1";

std::string DeviceKey::id() const {
  return fmt::format("{}|{}|{}|{}|{}|{}", backend, model, arch, driver, nvrtc, loom);
}

static std::string cpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0)
      if (size_t colon = line.find(':'); colon != std::string::npos) {
        std::string m = line.substr(colon + 1);
        size_t b = m.find_first_not_of(' ');
        return b == std::string::npos ? "unknown cpu" : m.substr(b);
      }
  return "unknown cpu";
}

static std::string nvrtcVersionOrNone() {
  try {
    return cuda::nvrtcVersionString();
  } catch (const std::exception &) {
    return "none";
  }
}

DeviceKey currentDeviceKey(runtime::Backend requested) {
  runtime::Backend backend = runtime::resolveBackend(requested);
  static std::mutex mutex;
  static std::map<runtime::Backend, DeviceKey> keys;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = keys.find(backend); it != keys.end())
    return it->second;
  DeviceKey k;
  k.backend = runtime::backendName(backend);
  k.nvrtc = nvrtcVersionOrNone();
  k.loom = LOOM_VERSION_STRING;
  if (backend == runtime::Backend::Cuda) {
    cuda::Context context(0);
    k.model = context.name();
    k.arch = context.arch();
    k.driver = cuda::driverVersionString();
  } else {
    // CPU timings depend on the core count as much as on the model.
    k.model = fmt::format("{} x{}", cpuModel(), std::max(1u, std::thread::hardware_concurrency()));
    utsname u{};
    k.arch = uname(&u) == 0 ? u.machine : "unknown";
    // The emulated device runs sm_80 code whatever the host.
    if (backend == runtime::Backend::Emu)
      k.arch += "/emu-sm_80";
    k.driver = "none";
  }
  keys.emplace(backend, k);
  return k;
}

bool cacheLookupsEnabled() {
  const char *v = std::getenv("LOOM_AUTOTUNE");
  if (!v)
    return true;
  std::string s = v;
  return !(s == "0" || s == "off" || s == "false" || s == "OFF" || s == "FALSE");
}

std::string TuningCache::defaultDirectory() {
  return cuda::DiskCache::defaultDirectory() + "/autotune";
}

TuningCache::TuningCache(std::string directory) : dir_(std::move(directory)) {}

static std::string slug(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      out += char(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '-')
      out += '-';
    if (out.size() >= 40)
      break;
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "device" : out;
}

std::string TuningCache::pathFor(const DeviceKey &d) const {
  return fmt::format("{}/{}-{}-{}.json", dir_, slug(d.backend + " " + d.model), slug(d.arch),
                     cuda::sha256Hex(d.id()).substr(0, 12));
}

//===- serialization ------------------------------------------------------===//

static Json deviceJson(const DeviceKey &d) {
  Json j = Json::object();
  j["backend"] = d.backend;
  j["model"] = d.model;
  j["arch"] = d.arch;
  j["driver"] = d.driver;
  j["nvrtc"] = d.nvrtc;
  j["loom"] = d.loom;
  return j;
}

static std::string checksumOf(const Json &withoutChecksum) {
  std::string text = withoutChecksum.dump();
  return fmt::format("fnv1a64:{:016x}", cuda::fnv1a64(text.data(), text.size()));
}

std::string TuningCache::serialize(const DeviceKey &device,
                                   const std::map<std::string, CacheEntry> &entries) {
  Json doc = Json::object();
  doc["format"] = kFormat;
  doc["device"] = deviceJson(device);
  Json &es = doc["entries"] = Json::object();
  for (const auto &[key, e] : entries) {
    Json j = Json::object();
    Json &c = j["config"] = Json::object();
    for (const auto &[k, v] : e.config)
      c[k] = v;
    j["ms"] = e.ms;
    j["timed"] = e.timed;
    j["pruned"] = e.pruned;
    j["failed"] = e.failed;
    j["world"] = e.world;
    j["tunedAt"] = e.tunedAt;
    es[key] = std::move(j);
  }
  doc["checksum"] = checksumOf(doc);
  return doc.dump();
}

TuningCache::FileInfo TuningCache::parse(const std::string &text) {
  Json doc = Json::parse(text);
  if (!doc.isObject())
    throw std::runtime_error("top level is not a JSON object");
  std::string stored = doc.at("checksum").string();
  doc.items().erase("checksum");
  std::string want = checksumOf(doc);
  if (stored != want)
    throw std::runtime_error(fmt::format("checksum mismatch (file says {}, content is {})",
                                         stored, want));
  if (doc.at("format").string() != kFormat)
    throw std::runtime_error(fmt::format("format '{}' is not '{}'", doc.at("format").string(),
                                         kFormat));
  FileInfo info;
  const Json &d = doc.at("device");
  info.device = {d.at("backend").string(), d.at("model").string(), d.at("arch").string(),
                 d.at("driver").string(),  d.at("nvrtc").string(), d.at("loom").string()};
  for (const auto &[key, j] : doc.at("entries").items()) {
    CacheEntry e;
    for (const auto &[k, v] : j.at("config").items()) {
      double x = v.number();
      if (x != double(int64_t(x)))
        throw std::runtime_error(fmt::format("entry '{}': knob {} = {} is not an integer", key, k, x));
      e.config[k] = int64_t(x);
    }
    if (e.config.empty())
      throw std::runtime_error(fmt::format("entry '{}' has an empty config", key));
    e.ms = j.at("ms").number();
    e.timed = int(j.at("timed").number());
    e.pruned = int(j.at("pruned").number());
    e.failed = int(j.at("failed").number());
    e.world = int(j.at("world").number());
    e.tunedAt = j.at("tunedAt").string();
    info.entries.emplace(key, std::move(e));
  }
  info.valid = true;
  return info;
}

//===- files --------------------------------------------------------------===//

namespace {
std::mutex gMemoMutex;
struct Memo {
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtimeNs;
  TuningCache::FileInfo info;
};
std::map<std::string, Memo> gMemo;
std::set<std::string> gWarned;

void warnOnce(const std::string &path, const std::string &why) {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  if (gWarned.insert(path).second)
    std::fprintf(stderr, "loom: warning: ignoring corrupt autotune cache file %s: %s\n",
                 path.c_str(), why.c_str());
}

bool readFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

/// The parsed file at `path`: nullopt when absent; an invalid FileInfo (and
/// a warning) when corrupt.
std::optional<TuningCache::FileInfo> load(const std::string &path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    return std::nullopt;
  int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard<std::mutex> lock(gMemoMutex);
    auto it = gMemo.find(path);
    // File timestamps can be coarser than the time between two writes, so
    // a file modified in the last 2 s is always re-read (git's "racy
    // clean" rule); older ones are trusted by (inode, size, mtime).
    bool settled = int64_t(std::time(nullptr)) - int64_t(st.st_mtim.tv_sec) > 2;
    if (settled && it != gMemo.end() && it->second.dev == st.st_dev &&
        it->second.ino == st.st_ino && it->second.size == st.st_size &&
        it->second.mtimeNs == mtime)
      return it->second.info;
  }
  std::string text;
  if (!readFile(path, text))
    return std::nullopt;
  TuningCache::FileInfo info;
  try {
    info = TuningCache::parse(text);
  } catch (const std::exception &e) {
    info.valid = false;
    info.error = e.what();
    warnOnce(path, e.what());
  }
  info.path = path;
  std::lock_guard<std::mutex> lock(gMemoMutex);
  gMemo[path] = Memo{st.st_dev, st.st_ino, st.st_size, mtime, info};
  return info;
}

void makeDirs(const std::string &dir) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(ErrorCode::Internal,
                  fmt::format("autotune cache: cannot create directory {}: {}", part,
                              std::strerror(errno)));
  }
}

std::string utcNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
} // namespace

std::optional<CacheEntry> TuningCache::lookup(const DeviceKey &device,
                                              const std::string &entryKey) const {
  auto info = load(pathFor(device));
  if (!info || !info->valid || !(info->device == device))
    return std::nullopt;
  auto it = info->entries.find(entryKey);
  if (it == info->entries.end())
    return std::nullopt;
  return it->second;
}

std::string TuningCache::whyUnwritable(const DeviceKey &device) const {
  try {
    makeDirs(dir_);
  } catch (const Error &e) {
    return e.what();
  }
  std::string lockPath = pathFor(device) + ".lock";
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return fmt::format("autotune cache: cannot open {}: {}", lockPath, std::strerror(errno));
  ::close(fd);
  return "";
}

void TuningCache::store(const DeviceKey &device, const std::string &entryKey,
                        const CacheEntry &entry) {
  makeDirs(dir_);
  std::string path = pathFor(device), lockPath = path + ".lock";
  int lockFd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lockFd < 0)
    throw Error(ErrorCode::Internal, fmt::format("autotune cache: cannot open {}: {}", lockPath,
                                                 std::strerror(errno)));
  // flock locks belong to the open file description, so two threads of one
  // process (in-process ranks) exclude each other as two processes do.
  while (::flock(lockFd, LOCK_EX) != 0 && errno == EINTR) {
  }
  struct Unlock {
    int fd;
    ~Unlock() {
      ::flock(fd, LOCK_UN);
      ::close(fd);
    }
  } unlock{lockFd};

  std::map<std::string, CacheEntry> entries;
  std::string text;
  if (readFile(path, text)) {
    try {
      FileInfo old = parse(text);
      if (old.device == device)
        entries = std::move(old.entries);
    } catch (const std::exception &e) {
      warnOnce(path, e.what());
    }
  }
  CacheEntry e = entry;
  if (e.tunedAt.empty())
    e.tunedAt = utcNow();
  entries[entryKey] = e;
  std::string out = serialize(device, entries);

  std::string tmp = fmt::format("{}.tmp.{}.{:x}", path, ::getpid(),
                                std::hash<std::thread::id>()(std::this_thread::get_id()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(ErrorCode::Internal,
                fmt::format("autotune cache: cannot create {}: {}", tmp, std::strerror(errno)));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::write(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(ErrorCode::Internal,
                  fmt::format("autotune cache: cannot write {}: {}", tmp, std::strerror(err)));
    }
    done += size_t(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::Internal, fmt::format("autotune cache: cannot rename {} to {}: {}",
                                                 tmp, path, std::strerror(err)));
  }
}

static std::vector<std::string> directoryFiles(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (e->d_name[0] != '.')
        names.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

static bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<TuningCache::FileInfo> TuningCache::list() const {
  std::vector<FileInfo> out;
  for (const std::string &name : directoryFiles(dir_)) {
    if (!endsWith(name, ".json"))
      continue;
    std::string path = dir_ + "/" + name, text;
    FileInfo info;
    if (readFile(path, text)) {
      try {
        info = parse(text);
      } catch (const std::exception &e) {
        info.valid = false;
        info.error = e.what();
      }
    } else {
      info.error = "unreadable";
    }
    info.path = path;
    out.push_back(std::move(info));
  }
  return out;
}

size_t TuningCache::clear() {
  size_t removed = 0;
  for (const std::string &name : directoryFiles(dir_)) {
    // Lock files stay: deleting one while a tuner holds it would let the
    // next tuner lock a fresh inode and run concurrently with the first.
    bool isCache = endsWith(name, ".json");
    if (isCache || name.find(".json.tmp.") != std::string::npos)
      if (::unlink((dir_ + "/" + name).c_str()) == 0 && isCache)
        ++removed;
  }
  std::lock_guard<std::mutex> lock(gMemoMutex);
  gMemo.clear();
  return removed;
}

} // namespace loom::autotune
