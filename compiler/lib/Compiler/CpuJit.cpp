//===- CpuJit.cpp - ORC JIT of lowered kernels ----------------------------===//
#include "loom/Compiler/CpuJit.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ExecutionEngine/Orc/Core.h"
#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>

using namespace loom;
using loom::compiler::CpuTarget;

namespace {
void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

// Conversions LLVM lowers to compiler-runtime calls when the target has no
// instruction for them: f32/f64 -> f16 without F16C, and f32/f64 -> bf16
// without AVX512-BF16 (x86-64-v2/v3, and v4 before Cooper Lake). The pipeline
// expands the f32 -> bf16 truncations it sees (arith-expand) and carries
// bf16 through selects and branches as i16 (loom-select-half-floats-as-bits),
// so a kernel's hot loops call none of these; but LLVM's own legalization
// may still emit __truncsfbf2 elsewhere (scalar bf16 code on x86-64-v2),
// and libgcc before GCC 13 does not have it. So every such builtin is
// provided here, and a kernel never depends on which compiler runtime the host happens to have.
// x86-64 passes half and bfloat in an SSE register, hence _Float16 as the
// carrier type for both.
uint16_t carrierBits(_Float16 h) { uint16_t u; std::memcpy(&u, &h, 2); return u; }
_Float16 bitsCarrier(uint16_t u) { _Float16 h; std::memcpy(&h, &u, 2); return h; }

// double -> float rounded to odd: exact where the float is, and otherwise
// with its last bit set, so that rounding the float again to a 16-bit format
// (at most 10 mantissa bits of float's 23) gives the correctly rounded result
// of the double: no double rounding.
float roundToOddFloat(double d) {
  float f = static_cast<float>(d);
  if (std::isnan(d) || std::isinf(f) || static_cast<double>(f) == d)
    return f;
  if (std::fabs(static_cast<double>(f)) > std::fabs(d))
    f = std::nextafter(f, 0.0f); // truncate toward zero
  return bitsToFloat(floatBits(f) | 1u);
}

extern "C" float loomExtendHalfToFloat(_Float16 h) { return halfToFloat(carrierBits(h)); }
extern "C" double loomExtendHalfToDouble(_Float16 h) { return halfToFloat(carrierBits(h)); }
extern "C" _Float16 loomTruncFloatToHalf(float f) { return bitsCarrier(floatToHalf(f)); }
extern "C" _Float16 loomTruncDoubleToHalf(double d) {
  return bitsCarrier(floatToHalf(roundToOddFloat(d)));
}
extern "C" float loomExtendBf16ToFloat(_Float16 b) { return bf16ToFloat(carrierBits(b)); }
extern "C" _Float16 loomTruncFloatToBf16(float f) { return bitsCarrier(floatToBf16(f)); }
extern "C" _Float16 loomTruncDoubleToBf16(double d) {
  return bitsCarrier(floatToBf16(roundToOddFloat(d)));
}

/// The builtins above, by the names LLVM's x86 legalization calls.
const std::vector<std::pair<const char *, void *>> &conversionBuiltins() {
  static const std::vector<std::pair<const char *, void *>> builtins = {
      {"__extendhfsf2", reinterpret_cast<void *>(&loomExtendHalfToFloat)},
      {"__extendhfdf2", reinterpret_cast<void *>(&loomExtendHalfToDouble)},
      {"__truncsfhf2", reinterpret_cast<void *>(&loomTruncFloatToHalf)},
      {"__truncdfhf2", reinterpret_cast<void *>(&loomTruncDoubleToHalf)},
      {"__extendbfsf2", reinterpret_cast<void *>(&loomExtendBf16ToFloat)},
      {"__truncsfbf2", reinterpret_cast<void *>(&loomTruncFloatToBf16)},
      {"__truncdfbf2", reinterpret_cast<void *>(&loomTruncDoubleToBf16)},
  };
  return builtins;
}

llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  for (const auto &[name, fn] : conversionBuiltins())
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  return map;
}

/// Whether the JIT resolves `name`: one of the builtins above, or a symbol of
/// this process (libm, libc), which the engine searches.
bool jitResolves(llvm::StringRef name) {
  for (const auto &builtin : conversionBuiltins())
    if (name == builtin.first)
      return true;
  return dlsym(RTLD_DEFAULT, name.str().c_str()) != nullptr;
}

std::string unresolvedSymbolError(const std::string &symbol, const std::string &kernelName,
                                  const CpuTarget &target) {
  return "CPU JIT cannot resolve symbol '" + symbol + "' needed by kernel '" + kernelName +
         "' for CPU target " + target.name + " (" + target.cpu + ")";
}

/// Every function compiled for `target`: the per-function attributes are what
/// LLVM's code generator reads first, so they hold whichever TargetMachine
/// the engine builds.
void setTargetAttributes(llvm::Module &module, const CpuTarget &target) {
  for (llvm::Function &fn : module) {
    if (fn.isDeclaration())
      continue;
    fn.addFnAttr("target-cpu", target.cpu);
    fn.addFnAttr("target-features", target.features);
  }
}

std::unique_ptr<llvm::TargetMachine> targetMachineFor(const CpuTarget &target,
                                                      unsigned optLevel,
                                                      const std::string &kernelName) {
  llvm::orc::JITTargetMachineBuilder builder{llvm::Triple(llvm::sys::getProcessTriple())};
  builder.setCPU(target.cpu);
  llvm::SubtargetFeatures features(target.features);
  builder.addFeatures(features.getFeatures());
  builder.setCodeGenOptLevel(static_cast<llvm::CodeGenOptLevel>(optLevel));
  auto tm = builder.createTargetMachine();
  if (!tm)
    throw Error(ErrorCode::CompileFailed, "no LLVM target machine for kernel '" + kernelName +
                                              "' and CPU target " + target.name + ": " +
                                              llvm::toString(tm.takeError()));
  return std::move(*tm);
}

/// The first symbol ORC reported missing, if `err` is that error.
std::optional<std::string> missingSymbol(llvm::Error err, std::string &otherText) {
  std::optional<std::string> symbol;
  llvm::handleAllErrors(
      std::move(err),
      [&](const llvm::orc::SymbolsNotFound &notFound) {
        for (const auto &s : notFound.getSymbols())
          if (!symbol)
            symbol = (*s).str();
      },
      [&](const llvm::ErrorInfoBase &other) { otherText += other.message(); });
  return symbol;
}

std::string errorText(llvm::Error err) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << err;
  return s;
}
} // namespace

compiler::CpuExecutable::~CpuExecutable() = default;

std::unique_ptr<compiler::CpuExecutable>
compiler::CpuExecutable::create(mlir::ModuleOp module, const std::string &kernelName,
                                unsigned optLevel, const CpuTarget &target) {
  initializeNativeTarget();
  // The optimizer runs without the target machine on purpose: with it the
  // loop vectorizer fires on every tile loop and JIT time grows 5-10x
  // (softmax 40 -> 215 ms, matmul 0.28 -> 3 s, loaded machine), while the
  // attention kernels measured no faster (loom-bench-attention): their hot
  // loops, the dots, are vectorized before LLVM by loom-vectorize-dot, whose
  // explicit vectors the code generator maps to the target's registers.
  auto optimize = mlir::makeOptimizingTransformer(optLevel, 0, nullptr);
  std::string unresolved;
  auto transformer = [&](llvm::Module *llvmModule) -> llvm::Error {
    setTargetAttributes(*llvmModule, target);
    // A call the IR itself declares and nothing provides is reported below,
    // by name, before anything is materialized (ORC would print its own
    // diagnostic). The engine cantFail()s the transformer's result, so the
    // finding is recorded rather than returned as an error.
    for (const llvm::Function &fn : *llvmModule)
      if (fn.isDeclaration() && !fn.isIntrinsic() && !fn.use_empty() &&
          !jitResolves(fn.getName()) && unresolved.empty())
        unresolved = fn.getName().str();
    return unresolved.empty() ? optimize(llvmModule) : llvm::Error::success();
  };
  mlir::ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  options.enableGDBNotificationListener = false;
  options.enablePerfNotificationListener = false;
  auto engine = mlir::ExecutionEngine::create(module, options,
                                              targetMachineFor(target, optLevel, kernelName));
  if (!engine)
    throw Error(ErrorCode::CompileFailed,
                "LLVM JIT failed for kernel '" + kernelName +
                    "': " + errorText(engine.takeError()));
  if (!unresolved.empty())
    throw Error(ErrorCode::CompileFailed, unresolvedSymbolError(unresolved, kernelName, target));
  (*engine)->registerSymbols(runtimeSymbols);
  (*engine)->initialize();
  auto entry = (*engine)->lookupPacked(kernelName);
  if (!entry) {
    if (!unresolved.empty()) // found by the transformer, if it ran lazily
      throw Error(ErrorCode::CompileFailed,
                  unresolvedSymbolError(unresolved, kernelName, target));
    // A builtin the code generator calls (a libcall) is only known here.
    std::string otherText;
    if (auto symbol = missingSymbol(entry.takeError(), otherText))
      throw Error(ErrorCode::CompileFailed, unresolvedSymbolError(*symbol, kernelName, target));
    throw Error(ErrorCode::CompileFailed,
                "LLVM JIT has no entry point for kernel '" + kernelName + "': " + otherText);
  }
  std::unique_ptr<CpuExecutable> exe(new CpuExecutable());
  exe->engine_ = std::move(*engine);
  exe->entry_ = *entry;
  return exe;
}

std::string compiler::translateToLLVMIRText(mlir::ModuleOp module, unsigned optLevel,
                                            const CpuTarget &target) {
  initializeNativeTarget();
  llvm::LLVMContext llvmContext;
  auto llvmModule = mlir::translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    throw Error(ErrorCode::CompileFailed, "translation to LLVM IR failed");
  setTargetAttributes(*llvmModule, target);
  if (optLevel > 0) {
    auto transformer = mlir::makeOptimizingTransformer(optLevel, 0, nullptr);
    if (llvm::Error err = transformer(llvmModule.get()))
      throw Error(ErrorCode::CompileFailed,
                  "LLVM optimization failed: " + errorText(std::move(err)));
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  llvmModule->print(os, nullptr);
  return text;
}
