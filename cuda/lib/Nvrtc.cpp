//===- Nvrtc.cpp - NVRTC compile, arch validation, ptxas report -----------===//

#include "loom/cuda/Nvrtc.h"

#include "loom/cuda/DiskCache.h"
#include "loom/Support/Error.h"

#include <nvrtc.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#ifndef LOOM_CUDA_INCLUDE_DIR
#define LOOM_CUDA_INCLUDE_DIR "/usr/local/cuda/include"
#endif

namespace fs = std::filesystem;

namespace loom::cuda {
namespace {

/// NVRTC API misuse (not a compile error) is a Loom bug.
void checkNvrtc(nvrtcResult r, const char *call) {
  if (r != NVRTC_SUCCESS)
    throw Error(ErrorCode::Internal, std::string(call) + " failed: " + nvrtcGetErrorString(r));
}

/// Owns an nvrtcProgram so every exit path destroys it.
struct Program {
  nvrtcProgram handle = nullptr;
  ~Program() {
    if (handle)
      nvrtcDestroyProgram(&handle);
  }
};

std::string programLog(nvrtcProgram prog) {
  size_t size = 0;
  if (nvrtcGetProgramLogSize(prog, &size) != NVRTC_SUCCESS || size <= 1)
    return {};
  std::string log(size, '\0');
  nvrtcGetProgramLog(prog, log.data());
  log.resize(size - 1); // drop the terminating NUL
  return log;
}

/// A file name safe for any header name ("loom/tile.cuh" -> "loom_tile.cuh").
std::string flatten(const std::string &name) {
  std::string out = name;
  for (char &c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_'))
      c = '_';
  return out.empty() ? "unnamed" : out;
}

/// Saves the program (and its in-memory headers, so the directory can be
/// fed to nvcc -I as is) for a failed compile; returns the source's path.
std::string saveFailedSource(const std::string &source, const std::vector<SourceHeader> &headers,
                             const CompileOptions &options) {
  std::string key = source + '\0' + options.arch;
  for (const SourceHeader &h : headers)
    key += '\0' + h.name + '\0' + h.contents;
  fs::path dir = fs::path(failedSourceDir()) /
                 (flatten(options.programName) + "-" + sha256Hex(key).substr(0, 16));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return "(could not save source: " + ec.message() + ")";
  auto write = [&](const fs::path &path, const std::string &text) {
    fs::create_directories(path.parent_path(), ec);
    std::ofstream(path, std::ios::binary) << text;
  };
  for (const SourceHeader &h : headers) {
    // Keep "loom/tile.cuh" as a subdirectory, but never escape `dir`.
    fs::path rel = fs::path(h.name).relative_path().lexically_normal();
    bool escapes = rel.empty() || *rel.begin() == "..";
    write(dir / (escapes ? fs::path(flatten(h.name)) : rel), h.contents);
  }
  fs::path main = dir / flatten(options.programName);
  write(main, source);
  return main.string();
}

int parseInt(const std::string &s) { return s.empty() ? 0 : std::stoi(s); }

} // namespace

const KernelResources *CompiledCuda::kernel(const std::string &name) const {
  for (const KernelResources &k : kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

const std::vector<int> &nvrtcSupportedArchs() {
  static const std::vector<int> archs = [] {
    int n = 0;
    checkNvrtc(nvrtcGetNumSupportedArchs(&n), "nvrtcGetNumSupportedArchs");
    std::vector<int> v(n);
    if (n)
      checkNvrtc(nvrtcGetSupportedArchs(v.data()), "nvrtcGetSupportedArchs");
    return v;
  }();
  return archs;
}

std::string nvrtcVersionString() {
  int major = 0, minor = 0;
  checkNvrtc(nvrtcVersion(&major, &minor), "nvrtcVersion");
  return "NVRTC " + std::to_string(major) + "." + std::to_string(minor);
}

std::string failedSourceDir() {
  fs::path dir = fs::path(DiskCache::defaultDirectory()) / "failed";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec)
    return dir.string();
  return (fs::temp_directory_path(ec) / "loom-failed").string();
}

int validateArch(const std::string &arch) {
  static const std::regex form(R"(sm_(\d{2,3})([af]?))");
  std::smatch m;
  auto supportedList = [] {
    std::string s;
    for (int a : nvrtcSupportedArchs())
      s += (s.empty() ? "sm_" : ", sm_") + std::to_string(a);
    return s;
  };
  if (!std::regex_match(arch, m, form))
    throw Error(ErrorCode::Unsupported,
                "unsupported CUDA architecture '" + arch +
                    "': expected the form sm_XY (e.g. sm_80, sm_90a); " + nvrtcVersionString() +
                    " supports " + supportedList());
  int cc = std::stoi(m[1]);
  const auto &archs = nvrtcSupportedArchs();
  if (std::find(archs.begin(), archs.end(), cc) == archs.end())
    throw Error(ErrorCode::Unsupported, "unsupported CUDA architecture '" + arch + "': " +
                                            nvrtcVersionString() + " supports " +
                                            supportedList());
  // Arch-specific 'a' variants exist only from Hopper on.
  if (m[2] == "a" && cc < 90)
    throw Error(ErrorCode::Unsupported, "unsupported CUDA architecture '" + arch +
                                            "': the 'a' suffix needs sm_90 or newer");
  if (m[2] == "f" && cc < 100)
    throw Error(ErrorCode::Unsupported, "unsupported CUDA architecture '" + arch +
                                            "': the 'f' suffix needs sm_100 or newer");
  return cc;
}

int requireTensorCoreArch(const std::string &arch) {
  // Check the form first so 'foo' reports a malformed arch, but don't demand
  // NVRTC support yet: sm_70 should say "too old for bf16 mma" even where
  // NVRTC has dropped it.
  static const std::regex form(R"(sm_(\d{2,3})[af]?)");
  std::smatch m;
  if (std::regex_match(arch, m, form) && std::stoi(m[1]) < 80)
    throw Error(ErrorCode::Unsupported,
                "unsupported CUDA architecture '" + arch +
                    "': Loom's kernels need bf16 tensor cores (mma.sync m16n8k16), "
                    "available from sm_80 (Ampere) on");
  return validateArch(arch);
}

int64_t maxSharedBytesPerBlock(const std::string &arch) {
  const int cc = requireTensorCoreArch(arch);
  if (cc == 86 || cc == 89)
    return 99 * 1024;
  if (cc >= 90)
    return 227 * 1024;
  return 163 * 1024; // sm_80, sm_87
}

std::vector<KernelResources> parsePtxasReport(const std::string &log) {
  // ptxas -v prints, per entry function:
  //   ptxas info    : Compiling entry function 'k' for 'sm_80'
  //   ptxas info    : Function properties for k
  //       8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  //   ptxas info    : Used 40 registers, used 1 barriers, 4096 bytes smem, 380 bytes cmem[0]
  // Non-entry functions get "Function properties" blocks too; only entries
  // are reported.
  static const std::regex entry(R"(Compiling entry function '([^']+)')");
  static const std::regex props(R"(Function properties for (\S+))");
  static const std::regex frame(
      R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
  static const std::regex regs(R"(Used (\d+) registers)");
  static const std::regex smem(R"((\d+) bytes smem)");
  static const std::regex cmem(R"((\d+) bytes cmem\[0\])");

  // Stack-frame lines are kept per function name and applied to entries at
  // the end, so the order of the blocks does not matter.
  struct Frame {
    int stack = 0, spillStores = 0, spillLoads = 0;
  };
  std::map<std::string, Frame> frames;
  std::vector<KernelResources> out;
  std::string current;   // entry awaiting its "Used N registers" line
  std::string propsName; // function awaiting its stack-frame line
  std::istringstream in(log);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, entry)) {
      current = m[1];
      if (std::none_of(out.begin(), out.end(), [&](auto &k) { return k.name == current; }))
        out.push_back(KernelResources{.name = current});
    } else if (std::regex_search(line, m, props)) {
      propsName = m[1];
    } else if (std::regex_search(line, m, frame)) {
      if (!propsName.empty())
        frames[propsName] = {parseInt(m[1]), parseInt(m[2]), parseInt(m[3])};
      propsName.clear();
    } else if (!current.empty() && std::regex_search(line, m, regs)) {
      auto k = std::find_if(out.begin(), out.end(), [&](auto &k) { return k.name == current; });
      k->registers = parseInt(m[1]);
      if (std::regex_search(line, m, smem))
        k->sharedBytes = parseInt(m[1]);
      if (std::regex_search(line, m, cmem))
        k->constantBytes = parseInt(m[1]);
      current.clear();
    }
  }
  for (KernelResources &k : out)
    if (auto f = frames.find(k.name); f != frames.end()) {
      k.stackFrameBytes = f->second.stack;
      k.spillStoreBytes = f->second.spillStores;
      k.spillLoadBytes = f->second.spillLoads;
    }
  return out;
}

CompiledCuda compileCuda(const std::string &source, const std::vector<SourceHeader> &headers,
                         const CompileOptions &options) {
  validateArch(options.arch);
  auto start = std::chrono::steady_clock::now();

  std::vector<const char *> headerSources, headerNames;
  for (const SourceHeader &h : headers) {
    headerSources.push_back(h.contents.c_str());
    headerNames.push_back(h.name.c_str());
  }
  Program prog;
  checkNvrtc(nvrtcCreateProgram(&prog.handle, source.c_str(), options.programName.c_str(),
                                static_cast<int>(headers.size()), headerSources.data(),
                                headerNames.data()),
             "nvrtcCreateProgram");

  // NVRTC only accepts the long --gpu-architecture spelling for real (sm_)
  // targets with the 'a' suffix; -I: NVRTC 13 ships no cuda_bf16.h itself.
  std::vector<std::string> opts = {
      "--gpu-architecture=" + options.arch,
      "-I" LOOM_CUDA_INCLUDE_DIR,
      "-std=c++17",
      "--ptxas-options=-v",
  };
  if (options.lineInfo)
    opts.push_back("-lineinfo");
  opts.insert(opts.end(), options.extraOptions.begin(), options.extraOptions.end());
  std::vector<const char *> argv;
  for (const std::string &o : opts)
    argv.push_back(o.c_str());

  nvrtcResult r = nvrtcCompileProgram(prog.handle, static_cast<int>(argv.size()), argv.data());
  CompiledCuda out;
  out.arch = options.arch;
  out.log = programLog(prog.handle);
  if (r != NVRTC_SUCCESS) {
    std::string saved = saveFailedSource(source, headers, options);
    throw Error(ErrorCode::CompileFailed,
                "NVRTC failed to compile '" + options.programName + "' for " + options.arch +
                    " (" + nvrtcGetErrorString(r) + "); source saved to " + saved + "\n" +
                    out.log);
  }

  size_t size = 0;
  checkNvrtc(nvrtcGetPTXSize(prog.handle, &size), "nvrtcGetPTXSize");
  out.ptx.resize(size);
  checkNvrtc(nvrtcGetPTX(prog.handle, out.ptx.data()), "nvrtcGetPTX");
  if (!out.ptx.empty() && out.ptx.back() == '\0')
    out.ptx.pop_back();
  checkNvrtc(nvrtcGetCUBINSize(prog.handle, &size), "nvrtcGetCUBINSize");
  out.cubin.resize(size);
  checkNvrtc(nvrtcGetCUBIN(prog.handle, reinterpret_cast<char *>(out.cubin.data())),
             "nvrtcGetCUBIN");
  out.kernels = parsePtxasReport(out.log);
  out.compileMs =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return out;
}

} // namespace loom::cuda
