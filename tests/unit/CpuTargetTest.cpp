//===- CpuTargetTest.cpp - CPU targets, and what the JIT resolves ---------===//
//
// The CPU target decides code generation, the vector width and the dot
// blocking; it is part of the cache key; a level above the host, an unknown
// name and a symbol nothing provides are one-line errors.
//
//===----------------------------------------------------------------------===//
#include "ExpectError.h"

#include "loom/Compiler/CpuJit.h"
#include "loom/Compiler/CpuPipeline.h"
#include "loom/Compiler/CpuTarget.h"
#include "loom/Compiler/Registration.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/Examples.h"
#include "loom/ops/Reference.h"
#include "loom/runtime/Kernel.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "llvm/TargetParser/Host.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>

using namespace loom;
namespace ref = loom::ops::ref;

namespace {
bool hostHas(const char *feature) { return llvm::sys::getHostCPUFeatures().lookup(feature); }

/// Sets LOOM_CPU_TARGET for one scope (tests of one binary run one at a time).
class ScopedCpuTargetEnv {
public:
  explicit ScopedCpuTargetEnv(const char *value) {
    if (const char *old = std::getenv("LOOM_CPU_TARGET"))
      saved_ = old;
    setenv("LOOM_CPU_TARGET", value, 1);
  }
  ~ScopedCpuTargetEnv() {
    if (saved_)
      setenv("LOOM_CPU_TARGET", saved_->c_str(), 1);
    else
      unsetenv("LOOM_CPU_TARGET");
  }

private:
  std::optional<std::string> saved_;
};

std::string loopsStage(const compiler::CpuTarget &t) {
  for (const compiler::CpuStage &stage : compiler::cpuStages(t))
    if (stage.name == "loops")
      return stage.pipeline;
  return {};
}
} // namespace

TEST(CpuTarget, LevelsChooseVectorWidthAndDotBlocking) {
  compiler::CpuTarget v2 = compiler::resolveCpuTarget("x86-64-v2");
  EXPECT_EQ(v2.cpu, "x86-64-v2");
  EXPECT_EQ(v2.vectorBits, 128u);
  EXPECT_NE(loopsStage(v2).find("loom-vectorize-dot{rows=4 lanes=8}"), std::string::npos)
      << loopsStage(v2);
  EXPECT_NE(loopsStage(v2).find("loom-vectorize-elementwise{lanes=4}"), std::string::npos);
  EXPECT_EQ(v2.features.find("avx"), std::string::npos) << v2.features;

  compiler::CpuTarget v3 = compiler::resolveCpuTarget("x86-64-v3");
  EXPECT_EQ(v3.vectorBits, 256u);
  EXPECT_NE(loopsStage(v3).find("loom-vectorize-dot{rows=4 lanes=16}"), std::string::npos);
  EXPECT_NE(loopsStage(v3).find("loom-vectorize-elementwise{lanes=8}"), std::string::npos);
  EXPECT_NE(v3.features.find("+avx2"), std::string::npos) << v3.features;
  EXPECT_NE(v3.features.find("+fma"), std::string::npos) << v3.features;
  EXPECT_EQ(v3.features.find("avx512"), std::string::npos) << v3.features;
  EXPECT_NE(v2.key(), v3.key());

  compiler::CpuTarget host = compiler::resolveCpuTarget("host");
  EXPECT_EQ(host.cpu, llvm::sys::getHostCPUName().str());
  EXPECT_EQ(host.vectorBits, hostHas("avx512f") ? 512u : hostHas("avx") ? 256u : 128u);
}

TEST(CpuTarget, LevelAboveTheHostIsRefusedNamingWhatIsMissing) {
  if (hostHas("avx512f") && hostHas("avx512bw") && hostHas("avx512vl") && hostHas("avx512dq") &&
      hostHas("avx512cd")) {
    // This host runs x86-64-v4: it resolves to AVX-512 blocking instead.
    compiler::CpuTarget v4 = compiler::resolveCpuTarget("x86-64-v4");
    EXPECT_EQ(v4.vectorBits, 512u);
    EXPECT_NE(loopsStage(v4).find("loom-vectorize-dot{rows=6 lanes=32}"), std::string::npos);
    return;
  }
  expectLoomErrorContaining([] { compiler::resolveCpuTarget("x86-64-v4"); },
                            ErrorCode::Unsupported,
                            {"CPU target 'x86-64-v4' needs ", "avx512f", "which this host (",
                             llvm::sys::getHostCPUName().str(), "lacks"});
}

TEST(CpuTarget, UnknownNamesAreErrorsListingTheValidOnes) {
  expectLoomError([] { compiler::resolveCpuTarget("skylake"); },
                  "CPU target 'skylake' is unknown (expected host, x86-64-v2, x86-64-v3, "
                  "x86-64-v4)");
  ScopedCpuTargetEnv env("avx9");
  expectLoomError([] { compiler::resolveCpuTarget(); },
                  "LOOM_CPU_TARGET 'avx9' is unknown (expected host, x86-64-v2, x86-64-v3, "
                  "x86-64-v4)");
  // The Specialization field wins over the environment.
  EXPECT_EQ(compiler::resolveCpuTarget("x86-64-v2").name, "x86-64-v2");
}

TEST(CpuTarget, EnvironmentChoosesTheTargetWhenTheSpecializationDoesNot) {
  ScopedCpuTargetEnv env("x86-64-v2");
  EXPECT_EQ(compiler::resolveCpuTarget().name, "x86-64-v2");
  runtime::Specialization spec;
  spec.backend = runtime::Backend::Cpu;
  EXPECT_NE(spec.key().find("cpu=x86-64-v2:"), std::string::npos) << spec.key();
  spec.cpuTarget = "x86-64-v3";
  EXPECT_NE(spec.key().find("cpu=x86-64-v3:"), std::string::npos) << spec.key();
}

TEST(CpuTarget, HalfPrecisionStoresOnEveryLevelAreCachedPerTarget) {
  // f16 and bf16 stores truncate f32 sums, which LLVM lowers to the
  // __truncsfhf2 (no F16C) and __truncsfbf2 (no AVX512-BF16) libcalls: the
  // JIT provides them, whatever the host's compiler runtime has.
  const int64_t n = 1000, block = 256;
  for (DType dtype : {DType::F16, DType::BF16}) {
    std::vector<float> x = ref::randomVector(size_t(n), -10, 10),
                       y = ref::randomVector(size_t(n), -10, 10);
    bool f16 = dtype == DType::F16;
    std::vector<uint16_t> xb = f16 ? ref::toF16Bits(x) : ref::toBf16Bits(x),
                          yb = f16 ? ref::toF16Bits(y) : ref::toBf16Bits(y);
    std::vector<float> xs = f16 ? ref::roundToF16(x) : ref::roundToBf16(x),
                       ys = f16 ? ref::roundToF16(y) : ref::roundToBf16(y);
    std::set<std::string> keys;
    for (const char *level : {"x86-64-v2", "x86-64-v3", "host"}) {
      runtime::Specialization spec{.constants = {{"BLOCK", block}},
                                   .backend = runtime::Backend::Cpu};
      spec.cpuTarget = level;
      auto kernel = runtime::compile(ops::vectorAddKernel(dtype), spec);
      keys.insert(kernel->cacheKey());
      std::vector<uint16_t> out(size_t(n), 0x7fff); // NaN in both formats
      kernel->launch(runtime::Grid(uint32_t((n + block - 1) / block)),
                     {runtime::Arg::buffer(xb.data(), dtype, xb.size()),
                      runtime::Arg::buffer(yb.data(), dtype, yb.size()),
                      runtime::Arg::buffer(out.data(), dtype, out.size()),
                      runtime::Arg::i32(int32_t(n))});
      double worst = 0;
      for (int64_t i = 0; i < n; ++i) {
        double want = double(xs[i]) + double(ys[i]);
        double got = f16 ? halfToFloat(out[i]) : bf16ToFloat(out[i]);
        ASSERT_FALSE(std::isnan(got)) << level << " out[" << i << "]";
        worst = std::max(worst, std::fabs(got - want) / std::max(std::fabs(want), 1e-2));
      }
      // One rounding of the exact sum: half an ulp of the format.
      EXPECT_LE(worst, f16 ? 1.0 / 2048 : 1.0 / 256) << level << " " << dtypeName(dtype);
    }
    EXPECT_EQ(keys.size(), 3u) << "each target is its own cache entry";
  }
}

TEST(CpuJit, SymbolNothingProvidesIsOneLineNamingSymbolKernelAndTarget) {
  auto ctx = compiler::createContext();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(R"mlir(
    llvm.func @loom_test_symbol_nobody_defines(f32) -> f32
    llvm.func @needs_missing(%x: f32) -> f32 {
      %y = llvm.call @loom_test_symbol_nobody_defines(%x) : (f32) -> f32
      llvm.return %y : f32
    }
  )mlir",
                                                        ctx.get());
  ASSERT_TRUE(module);
  compiler::CpuTarget target = compiler::resolveCpuTarget("x86-64-v2");
  std::string message = expectLoomErrorContaining(
      [&] { compiler::CpuExecutable::create(*module, "needs_missing", 2, target); },
      ErrorCode::CompileFailed,
      {"CPU JIT cannot resolve symbol 'loom_test_symbol_nobody_defines' needed by kernel "
       "'needs_missing' for CPU target x86-64-v2 (x86-64-v2)"});
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}
