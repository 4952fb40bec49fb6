//===- CudaBuild.cpp - kernels as CUDA C++, PTX and CUBIN -----------------===//
#include "loom/runtime/CudaBuild.h"

#include "CpuKernel.h"
#include "DeviceKernel.h"
#include "Packing.h"

#include "loom/Support/Error.h"
#include "loom/Version.h"
#include "loom/cuda/DiskCache.h"
#include "loom/cuda/FileLock.h"
#include "loom/cuda/Nvrtc.h"
#include "loom/device/EmbeddedHeaders.h"

#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <set>
#include <sstream>

namespace loom::runtime {
std::vector<std::string> bindingStrings(const Specialization &spec,
                                        const std::vector<ArgInfo> &sig,
                                        const std::string &kernelName,
                                        std::map<std::string, ScalarValue> &normalized);

const std::vector<cuda::SourceHeader> &deviceHeaders() {
  static const std::vector<cuda::SourceHeader> headers = [] {
    std::vector<cuda::SourceHeader> out;
    for (const auto &[name, text] : device::embedded_headers())
      out.push_back({name, text});
    return out;
  }();
  return headers;
}

namespace {
const std::string &deviceLibraryHash() {
  static const std::string hash = [] {
    std::string all;
    for (const auto &h : deviceHeaders())
      all += h.name + "\n" + h.contents + "\n";
    return hashHex(all);
  }();
  return hash;
}

void inlineInto(const std::string &code, std::set<std::string> &done, std::string &out) {
  std::istringstream in(code);
  std::string line;
  while (std::getline(in, line)) {
    std::string trimmed = line.substr(line.find_first_not_of(" \t") == std::string::npos
                                          ? line.size()
                                          : line.find_first_not_of(" \t"));
    if (trimmed.rfind("#pragma once", 0) == 0)
      continue;
    if (trimmed.rfind("#include \"", 0) == 0) {
      std::string name = trimmed.substr(10, trimmed.find('"', 10) - 10);
      auto it = std::find_if(deviceHeaders().begin(), deviceHeaders().end(),
                             [&](const cuda::SourceHeader &h) { return h.name == name; });
      if (it != deviceHeaders().end()) {
        if (done.insert(name).second) {
          out += "// ---- begin " + name + " ----\n";
          inlineInto(it->contents, done, out);
          out += "// ---- end " + name + " ----\n";
        }
        continue;
      }
    }
    out += line + "\n";
  }
}

// Disk-cache entry: length-prefixed fields.
void putField(std::string &blob, std::string_view field) {
  uint64_t n = field.size();
  blob.append(reinterpret_cast<const char *>(&n), 8);
  blob.append(field);
}
bool getField(const std::vector<uint8_t> &blob, size_t &pos, std::string &field) {
  uint64_t n;
  if (pos + 8 > blob.size())
    return false;
  std::memcpy(&n, blob.data() + pos, 8);
  pos += 8;
  if (n > blob.size() - pos)
    return false;
  field.assign(reinterpret_cast<const char *>(blob.data() + pos), n);
  pos += n;
  return true;
}

// "cubin" entry: PTX, CUBIN, NVRTC + ptxas log.
std::string cubinEntry(const cuda::CompiledCuda &binary) {
  std::string blob;
  putField(blob, binary.ptx);
  putField(blob, std::string_view(reinterpret_cast<const char *>(binary.cubin.data()),
                                  binary.cubin.size()));
  putField(blob, binary.log);
  return blob;
}

/// Fills binary's PTX, CUBIN, log and ptxas report from a "cubin" entry;
/// false if the entry is malformed.
bool readCubinEntry(const std::vector<uint8_t> &blob, cuda::CompiledCuda &binary) {
  size_t pos = 0;
  std::string cubin;
  if (!getField(blob, pos, binary.ptx) || !getField(blob, pos, cubin) ||
      !getField(blob, pos, binary.log))
    return false;
  binary.cubin.assign(cubin.begin(), cubin.end());
  binary.kernels = cuda::parsePtxasReport(binary.log);
  return true;
}

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

/// Traces `kernel` for `spec`'s constants, timed as the "dsl" stage.
mlir::OwningOpRef<mlir::ModuleOp> traceForCuda(const dsl::Kernel &kernel,
                                               const Specialization &spec,
                                               const compiler::StageCallback &afterStage,
                                               std::vector<compiler::StageTiming> *timings) {
  auto start = std::chrono::steady_clock::now();
  auto module = kernel.build(threadContext(), spec.constants);
  if (timings)
    timings->push_back({"dsl", msSince(start)});
  if (afterStage)
    afterStage("dsl", *module);
  return module;
}
} // namespace

const cuda::KernelResources &CudaBuild::resources() const {
  if (const cuda::KernelResources *r = binary.kernel(source.kernelName))
    return *r;
  throw Error(ErrorCode::Internal,
              "ptxas reported no resources for kernel '" + source.kernelName + "'");
}

std::string selfContainedSource(const std::string &code) {
  std::set<std::string> done;
  std::string out;
  inlineInto(code, done, out);
  return out;
}

compiler::CudaSource generateCudaSource(const dsl::Kernel &kernel, const Specialization &spec,
                                        unsigned numThreads, std::vector<ArgInfo> *signature,
                                        const compiler::StageCallback &afterStage,
                                        std::vector<compiler::StageTiming> *timings) {
  auto module = traceForCuda(kernel, spec, afterStage, timings);
  Specialization withThreads = spec;
  withThreads.numThreads = numThreads;
  std::vector<ArgInfo> sig;
  std::map<std::string, ScalarValue> bindings;
  auto source = cudaSourceFromModule(*module, kernel, withThreads, sig, bindings, afterStage,
                                     timings);
  if (signature)
    *signature = sig;
  return source;
}

void compileCudaBinary(CudaBuild &build, const CudaBuildOptions &options) {
  cuda::requireTensorCoreArch(options.arch);
  build.cacheKey = hashHex(build.source.code + "\narch=" + options.arch + "\n" +
                           cuda::nvrtcVersionString() + "\nloom=" LOOM_VERSION_STRING "\ndevice=" +
                           deviceLibraryHash());
  build.binary.arch = options.arch;
  cuda::CompileOptions nvrtcOptions;
  nvrtcOptions.arch = options.arch;
  nvrtcOptions.programName = build.source.kernelName + ".cu";
  auto runNvrtc = [&] {
    build.binary = cuda::compileCuda(build.source.code, deviceHeaders(), nvrtcOptions);
    build.timings.push_back({"nvrtc", build.binary.compileMs});
  };
  if (!options.useDiskCache) {
    runNvrtc();
    return;
  }
  // Single-flight across the processes of a node: one runs NVRTC, the
  // others wait on the entry's lock and read its CUBIN.
  auto start = std::chrono::steady_clock::now();
  cuda::DiskCache cache(cuda::DiskCache::defaultDirectory(), "cubin");
  auto fetched = cache.getOrBuild(
      build.cacheKey,
      [&] {
        runNvrtc();
        std::string blob = cubinEntry(build.binary);
        return std::vector<uint8_t>(blob.begin(), blob.end());
      },
      cuda::compileWaitTimeout());
  if (fetched.built)
    return;
  if (readCubinEntry(fetched.payload, build.binary)) {
    build.fromDiskCache = true;
    build.timings.push_back({"disk-cache", msSince(start)});
    return;
  }
  // A checksummed entry that is not a CUBIN entry (written by a different
  // layout under the same key): rebuild it.
  runNvrtc();
  cache.putOrWarn(build.cacheKey, cubinEntry(build.binary));
}

namespace {
/// Index entry: the generated source's fields and the CUBIN entry's key.
std::string indexBlob(const CudaBuild &build) {
  std::string blob;
  putField(blob, build.source.code);
  putField(blob, build.source.kernelName);
  putField(blob, std::to_string(build.source.sharedBytes));
  putField(blob, std::to_string(build.source.numThreads));
  putField(blob, build.cacheKey);
  return blob;
}

/// Fills `build` from an index entry and the CUBIN entry it names; false
/// (and `build` untouched) if either is missing or malformed.
bool loadIndexed(const std::vector<uint8_t> &blob, const std::string &arch, CudaBuild &build) {
  size_t pos = 0;
  CudaBuild found;
  std::string shared, threads;
  if (!getField(blob, pos, found.source.code) || !getField(blob, pos, found.source.kernelName) ||
      !getField(blob, pos, shared) || !getField(blob, pos, threads) ||
      !getField(blob, pos, found.cacheKey) || pos != blob.size())
    return false;
  char *end = nullptr;
  found.source.sharedBytes = std::strtoll(shared.c_str(), &end, 10);
  if (shared.empty() || *end)
    return false;
  found.source.numThreads = static_cast<unsigned>(std::strtoul(threads.c_str(), &end, 10));
  if (threads.empty() || *end)
    return false;
  cuda::DiskCache cubins(cuda::DiskCache::defaultDirectory(), "cubin");
  auto entry = cubins.get(found.cacheKey);
  if (!entry || !readCubinEntry(*entry, found.binary))
    return false;
  found.binary.arch = arch;
  found.fromDiskCache = true;
  found.signature = std::move(build.signature);
  found.timings = std::move(build.timings);
  build = std::move(found);
  return true;
}
} // namespace

void buildCudaFromModule(CudaBuild &build, mlir::ModuleOp module, const dsl::Kernel &kernel,
                         const Specialization &spec, const CudaBuildOptions &options,
                         std::map<std::string, ScalarValue> &bindings,
                         const compiler::StageCallback &afterStage) {
  cuda::requireTensorCoreArch(options.arch);
  Specialization target = spec;
  target.numThreads = options.numThreads;
  target.arch = options.arch;
  // The traced IR (before any pass) plus everything code generation and
  // NVRTC depend on; a caller watching the stages gets them run.
  auto start = std::chrono::steady_clock::now();
  auto binds = launchSignature(module, kernel, target, build.signature, bindings);
  std::string indexKey;
  cuda::DiskCache index(cuda::DiskCache::defaultDirectory(), "cubin-index");
  if (options.useDiskCache && !afterStage) {
    std::string ir;
    llvm::raw_string_ostream os(ir);
    module->print(os);
    // spec.key() leaves the CUDA fields out when the spec's backend
    // resolves to the CPU (buildCuda is also called that way): spell them.
    indexKey = hashHex(ir + "\n" + target.key() +
                       fmt::format("\nthreads={};arch={};stages={}\n", target.numThreads,
                                   target.arch, target.numStages) +
                       cuda::nvrtcVersionString() +
                       "\nloom=" LOOM_VERSION_STRING "\ndevice=" + deviceLibraryHash() + "\n" +
                       compiler::cudaCodegenSwitches());
    if (auto blob = index.get(indexKey); blob && loadIndexed(*blob, options.arch, build)) {
      build.timings.push_back({"disk-cache", msSince(start)});
      return;
    }
  }
  build.source = compiler::generateCuda(
      module, binds,
      {target.numThreads, target.numStages, cuda::maxSharedBytesPerBlock(target.arch)},
      afterStage, &build.timings);
  compileCudaBinary(build, options);
  if (!indexKey.empty())
    index.putOrWarn(indexKey, indexBlob(build));
}

CudaBuild buildCuda(const dsl::Kernel &kernel, const Specialization &spec,
                    const CudaBuildOptions &options, const compiler::StageCallback &afterStage) {
  cuda::requireTensorCoreArch(options.arch);
  CudaBuild build;
  auto module = traceForCuda(kernel, spec, afterStage, &build.timings);
  std::map<std::string, ScalarValue> bindings;
  buildCudaFromModule(build, *module, kernel, spec, options, bindings, afterStage);
  return build;
}

} // namespace loom::runtime
