//===- CpuKernel.cpp - the CPU backend: trace, lower, JIT, run ------------===//
#include "CpuKernel.h"

#include "Packing.h"

#include "loom/Compiler/CpuJit.h"
#include "loom/Compiler/Registration.h"
#include "loom/Conversion/Passes.h"
#include "loom/Dialect/Loom/IR/Loom.h"
#include "loom/Support/Error.h"
#include "loom/runtime/ThreadPool.h"

#include <array>
#include <chrono>
#include <cstring>
#include <fmt/format.h>

namespace loom::runtime {
std::string formatScalar(const ScalarValue &v);

mlir::MLIRContext &threadContext() {
  // One context per host thread: contexts are not shared across threads
  // (MLIR threading is disabled for latency), and reusing one avoids
  // re-registering dialects on every compile.
  thread_local std::unique_ptr<mlir::MLIRContext> ctx = compiler::createContext();
  return *ctx;
}

std::vector<ArgInfo> signatureOf(mlir::func::FuncOp func) {
  std::vector<ArgInfo> sig;
  auto names = func->getAttrOfType<mlir::ArrayAttr>(mlir::loom::kArgNamesAttrName);
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    ArgInfo info;
    info.name = mlir::cast<mlir::StringAttr>(names[i]).str();
    if (auto ptr = mlir::dyn_cast<mlir::loom::PtrType>(type)) {
      info.isPointer = true;
      info.dtype = *fromMlirType(ptr.getElementType());
    } else {
      info.isPointer = false;
      info.dtype = *fromMlirType(type);
    }
    sig.push_back(info);
  }
  return sig;
}

std::vector<std::string> bindingStrings(const Specialization &spec,
                                        const std::vector<ArgInfo> &sig,
                                        const std::string &kernelName,
                                        std::map<std::string, ScalarValue> &normalized) {
  std::vector<std::string> out;
  for (const auto &[name, value] : spec.bindings) {
    auto it = std::find_if(sig.begin(), sig.end(), [&](const ArgInfo &a) { return a.name == name; });
    if (it == sig.end())
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("specialization binds '{}', but kernel '{}' has no such argument",
                              name, kernelName));
    if (it->isPointer)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("specialization binds '{}' of kernel '{}', a pointer; only "
                              "scalar arguments can be bound",
                              name, kernelName));
    // An integer value may bind a float argument; a float never binds an
    // integer one (it would be silently truncated).
    if (!isFloat(it->dtype) && std::holds_alternative<double>(value))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("specialization binds {} '{}' of kernel '{}' to {} value {}",
                              dtypeName(it->dtype), name, kernelName,
                              std::holds_alternative<double>(value) ? "a float" : "an integer",
                              formatScalar(value)));
    // %.17g round-trips doubles exactly through the pass option.
    out.push_back(name + "=" + (std::holds_alternative<double>(value)
                                    ? fmt::format("{:.17g}", std::get<double>(value))
                                    : std::to_string(std::get<int64_t>(value))));
    if (isFloat(it->dtype) && std::holds_alternative<int64_t>(value))
      normalized[name] = static_cast<double>(std::get<int64_t>(value));
  }
  return out;
}

namespace {
double msSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}
} // namespace

CpuCompiledKernel::CpuCompiledKernel(const dsl::Kernel &kernel, const Specialization &spec,
                                     mlir::ModuleOp traced, double traceMs,
                                     const compiler::StageCallback &afterStage) {
  name_ = kernel.name();
  auto func = *traced.getOps<mlir::func::FuncOp>().begin();
  signature_ = signatureOf(func);
  bindings_ = spec.bindings;
  if (spec.cpuThreads > kMaxCpuThreads)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}': Specialization::cpuThreads {} exceeds the limit of {}",
                            name_, spec.cpuThreads, kMaxCpuThreads));
  cpuThreads_ = spec.cpuThreads;
  timings_.push_back({"dsl", traceMs});
  std::vector<std::string> binds = bindingStrings(spec, signature_, name_, bindings_);
  compiler::CpuTarget target = compiler::resolveCpuTarget(spec.cpuTarget);
  auto stages = compiler::lowerForCpu(traced, binds, target, afterStage);
  timings_.insert(timings_.end(), stages.begin(), stages.end());
  auto start = std::chrono::steady_clock::now();
  exe_ = compiler::CpuExecutable::create(traced, name_, spec.optLevel, target);
  timings_.push_back({"jit", msSince(start)});
}

CpuCompiledKernel::~CpuCompiledKernel() = default;

void CpuCompiledKernel::run(const Grid &grid, std::span<const Arg> args) const {
  // Packed-call layout: every lowered scalar in its own 8-byte slot. A buffer
  // is a memref<?xT> descriptor: allocated ptr, aligned ptr, offset, size,
  // stride; then 3 program ids and 3 program counts (i32).
  size_t numSlots = 0;
  for (const ArgInfo &a : signature_)
    numSlots += a.isPointer ? 5 : 1;
  size_t gridSlot = numSlots;
  numSlots += mlir::loom::kNumGridArgs;
  std::vector<uint64_t> templateSlots(numSlots, 0);
  size_t s = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const Arg &arg = args[i];
    if (signature_[i].isPointer) {
      // Masked loads read element 0 where the mask is false (branch-free,
      // see MemoryToLinalg.cpp), so an empty buffer is given a readable
      // zeroed element; its size stays 0.
      static const std::array<uint64_t, 2> kReadableElement = {0, 0};
      const void *data = arg.numElements() == 0 ? kReadableElement.data() : arg.data();
      uint64_t p = reinterpret_cast<uint64_t>(data);
      templateSlots[s++] = p;
      templateSlots[s++] = p;
      templateSlots[s++] = 0;
      templateSlots[s++] = arg.numElements();
      templateSlots[s++] = 1;
      continue;
    }
    templateSlots[s++] = scalarBits(arg);
  }
  for (int d = 0; d < 3; ++d) {
    int32_t n = static_cast<int32_t>(grid.dims[d]);
    std::memcpy(&templateSlots[gridSlot + 3 + d], &n, 4);
  }
  auto entry = exe_->entry();
  parallelFor(grid.size(), [&](unsigned, uint64_t begin, uint64_t end) {
    std::vector<uint64_t> slots = templateSlots;
    std::vector<void *> ptrs(numSlots);
    for (size_t k = 0; k < numSlots; ++k)
      ptrs[k] = &slots[k];
    for (uint64_t linear = begin; linear < end; ++linear) {
      int32_t pid[3] = {static_cast<int32_t>(linear % grid.dims[0]),
                        static_cast<int32_t>((linear / grid.dims[0]) % grid.dims[1]),
                        static_cast<int32_t>(linear / (uint64_t(grid.dims[0]) * grid.dims[1]))};
      for (int d = 0; d < 3; ++d)
        std::memcpy(&slots[gridSlot + d], &pid[d], 4);
      entry(ptrs.data());
    }
  }, cpuThreads_);
}

} // namespace loom::runtime
