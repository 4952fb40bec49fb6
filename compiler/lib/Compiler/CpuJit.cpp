//===- CpuJit.cpp - ORC JIT of lowered kernels ----------------------------===//
#include "loom/Compiler/CpuJit.h"

#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ExecutionEngine/Orc/Mangling.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <cstring>
#include <mutex>

using namespace loom;

namespace {
void initializeNativeTarget() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
}

// Half-precision conversions LLVM lowers to compiler-runtime calls on x86
// CPUs without F16C. Provided here so kernels do not depend on the host
// toolchain's libgcc. x86-64 passes half in an SSE register, hence _Float16.
// bf16 needs none: the pipeline expands its conversions (arith-expand).
uint16_t halfBits(_Float16 h) { uint16_t u; std::memcpy(&u, &h, 2); return u; }
_Float16 bitsHalf(uint16_t u) { _Float16 h; std::memcpy(&h, &u, 2); return h; }
extern "C" float loomExtendHalfToFloat(_Float16 h) { return halfToFloat(halfBits(h)); }
extern "C" _Float16 loomTruncFloatToHalf(float f) { return bitsHalf(floatToHalf(f)); }
extern "C" _Float16 loomTruncDoubleToHalf(double d) {
  // Rounds twice (double -> float -> half); kernels only truncate f32.
  return bitsHalf(floatToHalf(static_cast<float>(d)));
}

llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  auto add = [&](const char *name, auto *fn) {
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  };
  add("__extendhfsf2", &loomExtendHalfToFloat);
  add("__truncsfhf2", &loomTruncFloatToHalf);
  add("__truncdfhf2", &loomTruncDoubleToHalf);
  return map;
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
                                unsigned optLevel) {
  initializeNativeTarget();
  // The optimizer runs without the host target machine on purpose: with it
  // the loop vectorizer fires on every tile loop and JIT time grows 5-10x
  // (softmax 40 -> 215 ms, matmul 0.28 -> 3 s, loaded machine), while the
  // attention kernels measured no faster (loom-bench-attention): their hot
  // loops, the dots, are vectorized before LLVM by loom-vectorize-dot, whose
  // explicit vectors the JIT's host code generator maps to AVX2/AVX-512.
  auto transformer = mlir::makeOptimizingTransformer(optLevel, 0, nullptr);
  mlir::ExecutionEngineOptions options;
  options.transformer = transformer;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  options.enableGDBNotificationListener = false;
  options.enablePerfNotificationListener = false;
  auto engine = mlir::ExecutionEngine::create(module, options);
  if (!engine)
    throw Error(ErrorCode::CompileFailed,
                "LLVM JIT failed for kernel '" + kernelName +
                    "': " + errorText(engine.takeError()));
  (*engine)->registerSymbols(runtimeSymbols);
  (*engine)->initialize();
  auto entry = (*engine)->lookupPacked(kernelName);
  if (!entry)
    throw Error(ErrorCode::CompileFailed,
                "LLVM JIT has no entry point for kernel '" + kernelName +
                    "': " + errorText(entry.takeError()));
  std::unique_ptr<CpuExecutable> exe(new CpuExecutable());
  exe->engine_ = std::move(*engine);
  exe->entry_ = *entry;
  return exe;
}

std::string compiler::translateToLLVMIRText(mlir::ModuleOp module, unsigned optLevel) {
  initializeNativeTarget();
  llvm::LLVMContext llvmContext;
  auto llvmModule = mlir::translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    throw Error(ErrorCode::CompileFailed, "translation to LLVM IR failed");
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
