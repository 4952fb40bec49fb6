//===- CpuJit.cpp - ORC JIT of lowered kernels ----------------------------===//
#include "loom/Compiler/CpuJit.h"

#include "loom/Support/Error.h"

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

// Half-precision conversions that LLVM lowers to compiler-runtime calls on
// x86. They are provided here rather than taken from libgcc so kernels do
// not depend on the host toolchain's version (GCC 12's libgcc lacks the bf16
// ones). All round to nearest even, as cvt.rn does on the GPU.
uint32_t floatBits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
float bitsFloat(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

extern "C" float loomExtendHalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f)
    return bitsFloat(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0)
      return bitsFloat(sign);
    float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  return bitsFloat(sign | ((exp + 112) << 23) | (mant << 13));
}

extern "C" uint16_t loomTruncFloatToHalf(float f) {
  uint32_t u = floatBits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t absBits = u & 0x7fffffffu;
  if (absBits > 0x7f800000u)
    return 0x7fff; // NaN, canonical as in NVIDIA's host emulation.
  if (absBits >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return sign | 0x7c00u;
  if (absBits < 0x38800000u) { // result is subnormal or zero
    float scaled = bitsFloat(absBits) * 16777216.0f; // exact: times 2^24
    // nearbyint in the default round-to-nearest-even mode.
    uint32_t m = static_cast<uint32_t>(std::nearbyint(scaled));
    return sign | m;
  }
  uint32_t rounded = absBits + 0xfffu + ((absBits >> 13) & 1u);
  return sign | ((rounded - 0x38000000u) >> 13);
}

extern "C" uint16_t loomTruncDoubleToHalf(double d) {
  return loomTruncFloatToHalf(static_cast<float>(d));
}

extern "C" uint16_t loomTruncFloatToBFloat(float f) {
  uint32_t u = floatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return 0x7fff;
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

llvm::orc::SymbolMap runtimeSymbols(llvm::orc::MangleAndInterner interner) {
  llvm::orc::SymbolMap map;
  auto add = [&](const char *name, auto *fn) {
    map[interner(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                           llvm::JITSymbolFlags::Exported};
  };
  add("__extendhfsf2", &loomExtendHalfToFloat);
  add("__gnu_h2f_ieee", &loomExtendHalfToFloat);
  add("__truncsfhf2", &loomTruncFloatToHalf);
  add("__gnu_f2h_ieee", &loomTruncFloatToHalf);
  add("__truncdfhf2", &loomTruncDoubleToHalf);
  add("__truncsfbf2", &loomTruncFloatToBFloat);
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
