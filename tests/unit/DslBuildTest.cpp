//===- DslBuildTest.cpp - what the DSL builds -----------------------------===//
#include "loom/Compiler/Registration.h"
#include "loom/dsl/Kernel.h"

#include "mlir/IR/Operation.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

using namespace loom;
using namespace loom::dsl;

namespace {
std::string irOf(const Kernel &k, const Constants &c = {}) {
  static auto ctx = compiler::createContext();
  auto module = k.build(*ctx, c);
  std::string s;
  llvm::raw_string_ostream os(s);
  mlir::OpPrintingFlags flags;
  flags.enableDebugInfo(true, /*prettyForm=*/false);
  module->print(os, flags);
  return s;
}
} // namespace

TEST(DslBuild, SignatureAndAttributes) {
  Kernel k("sig", [](KernelBuilder &kb) {
    kb.pointer("x", DType::BF16);
    kb.scalar("n", DType::I32);
    kb.scalar("scale", DType::F32);
    kb.constant("BLOCK");
  });
  std::string ir = irOf(k, {{"BLOCK", 32}});
  EXPECT_NE(ir.find("func.func @sig(%arg0: !loom.ptr<bf16>"), std::string::npos) << ir;
  EXPECT_NE(ir.find("loom.arg_names = [\"x\", \"n\", \"scale\"]"), std::string::npos) << ir;
  EXPECT_NE(ir.find("loom.constants = {BLOCK = 32 : i64}"), std::string::npos) << ir;
  EXPECT_NE(ir.find("loom.kernel"), std::string::npos) << ir;
}

TEST(DslBuild, LiteralsTakeTheOperandDtype) {
  Kernel k("lit", [](KernelBuilder &kb) {
    Value y = kb.pointer("y", DType::F16);
    Value offs = arange(0, 16);
    store(y, offs, zeros({16}, DType::F16) * 0.5);
  });
  std::string ir = irOf(k);
  EXPECT_NE(ir.find("arith.constant 5.000000e-01 : f16"), std::string::npos) << ir;
  EXPECT_NE(ir.find("arith.mulf"), std::string::npos) << ir;
}

TEST(DslBuild, BroadcastingInsertsExpandAndBroadcast) {
  Kernel k("bc", [](KernelBuilder &kb) {
    Value y = kb.pointer("y", DType::I32);
    Value r = expand_dims(arange(0, 4), 1);  // 4x1
    Value c = arange(0, 8);                  // 8 -> 1x8
    store(y, r * 8 + c, r + c);
  });
  std::string ir = irOf(k);
  EXPECT_NE(ir.find("loom.expand_dims"), std::string::npos) << ir;
  EXPECT_NE(ir.find("tensor<4x1xi32> -> tensor<4x8xi32>"), std::string::npos) << ir;
  EXPECT_NE(ir.find("tensor<1x8xi32> -> tensor<4x8xi32>"), std::string::npos) << ir;
}

TEST(DslBuild, OpsCarryTheUserSourceLocation) {
  int line = 0;
  Kernel k("loc", [&](KernelBuilder &kb) {
    Value y = kb.pointer("y", DType::F32);
    line = __LINE__; Value a = dot(zeros({16, 16}, DType::F32), zeros({16, 16}, DType::F32));
    store(y, expand_dims(arange(0, 16), 1) * 16 + expand_dims(arange(0, 16), 0), a);
  });
  std::string ir = irOf(k);
  std::string expected = std::string("loc(\"") + __FILE__ + "\":" + std::to_string(line);
  EXPECT_NE(ir.find(expected), std::string::npos) << "missing " << expected << "\n" << ir;
}

TEST(DslBuild, ReducingOneDimensionGivesAScalar) {
  Kernel k("red", [](KernelBuilder &kb) {
    Value y = kb.pointer("y", DType::F32);
    Value s = sum(zeros({8}, DType::F32), 0);
    EXPECT_TRUE(s.isScalar());
    Value m = max(zeros({4, 8}, DType::F32), 1);
    EXPECT_EQ(m.shape(), Shape({4}));
    store(y, arange(0, 4), m + s);
  });
  irOf(k);
}

TEST(DslBuild, LoopCarriesValues) {
  Kernel k("loop", [](KernelBuilder &kb) {
    Value y = kb.pointer("y", DType::F32);
    Value n = kb.scalar("n", DType::I32);
    auto r = for_range(0, n, 1, {zeros({8}, DType::F32), 0},
                       [](Value i, const std::vector<Value> &c) -> std::vector<Value> {
      return {c[0] + 1.0, c[1] + i};
    });
    store(y, arange(0, 8), r[0] + r[1].to(DType::F32));
  });
  std::string ir = irOf(k);
  EXPECT_NE(ir.find("scf.for"), std::string::npos) << ir;
  EXPECT_NE(ir.find("iter_args"), std::string::npos) << ir;
}
