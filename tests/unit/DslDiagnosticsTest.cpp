//===- DslDiagnosticsTest.cpp - every DSL diagnostic, by exact text -------===//
#include "ExpectError.h"

#include "loom/Compiler/Registration.h"
#include "loom/dsl/Kernel.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

using namespace loom;
using namespace loom::dsl;

namespace {
mlir::MLIRContext &context() {
  static auto ctx = compiler::createContext();
  return *ctx;
}

/// Traces a kernel whose body is `body`; the body records the line of the
/// faulty call in `line`.
void expectDiag(const std::function<void(KernelBuilder &, int &)> &body, const char *op,
                const std::string &detail) {
  int line = 0;
  Kernel k("diag", [&](KernelBuilder &kb) { body(kb, line); });
  try {
    k.build(context(), {{"BLOCK", 64}});
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()), fmt::format("{}:{}: error: {}: {}", __FILE__, line, op, detail));
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    return;
  }
  ADD_FAILURE() << "no error for " << op << ": " << detail;
}
} // namespace

TEST(DslDiagnostics, DotInnerDimensions) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({64, 32}, DType::F16), b = zeros({16, 64}, DType::F16);
    line = __LINE__; dot(a, b);
  }, "dot", "inner dimensions differ: lhs 64x32, rhs 16x64");
}

TEST(DslDiagnostics, DotMixedDtypes) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({16, 16}, DType::F16), b = zeros({16, 16}, DType::BF16);
    line = __LINE__; dot(a, b);
  }, "dot", "operands must be f16, bf16 or f32 of one dtype, got tile 16x16 of f16 and tile 16x16 of bf16");
}

TEST(DslDiagnostics, DotNot2D) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({16}, DType::F32);
    line = __LINE__; dot(a, a);
  }, "dot", "operands must be 2-D tiles, got tile 16 of f32 and tile 16 of f32");
}

TEST(DslDiagnostics, DotAccumulator) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({16, 8}, DType::F16), acc = zeros({16, 16}, DType::F32);
    line = __LINE__; dot(a, zeros({8, 8}, DType::F16), acc);
  }, "dot", "accumulator must be an f32 tile of shape 16x8, got tile 16x16 of f32");
}

TEST(DslDiagnostics, BinaryDtypeMismatchNamesOperatorLine) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({4, 8}, DType::F16), b = zeros({4, 8}, DType::F32);
    line = __LINE__; Value c = a + b;
  }, "add", "dtype mismatch: tile 4x8 of f16 and tile 4x8 of f32 (cast with .to())");
}

TEST(DslDiagnostics, BroadcastIncompatible) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({4, 8}, DType::F32), b = zeros({5}, DType::F32);
    line = __LINE__; Value c = a * b;
  }, "mul", "cannot broadcast shapes 4x8 and 5");
}

TEST(DslDiagnostics, FloatLiteralWithInteger) {
  expectDiag([](KernelBuilder &, int &line) {
    Value i = arange(0, 8);
    line = __LINE__; Value c = i + 0.5;
  }, "add", "float literal 0.5 combined with an integer i32 value");
}

TEST(DslDiagnostics, RemainderOfFloats) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({8}, DType::F32);
    line = __LINE__; Value c = a % 2;
  }, "rem", "needs integer operands, got f32");
}

TEST(DslDiagnostics, ReduceAxisOutOfRange) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({4, 8}, DType::F32);
    line = __LINE__; max(a, 2);
  }, "max", "axis 2 out of range for tile 4x8 of f32");
}

TEST(DslDiagnostics, ReduceScalar) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; sum(program_id(0), 0);
  }, "sum", "expects a tile, got i32 scalar");
}

TEST(DslDiagnostics, LoadNeedsPointer) {
  expectDiag([](KernelBuilder &, int &line) {
    Value offs = arange(0, 8);
    line = __LINE__; load(offs, offs);
  }, "load", "first operand must be a pointer argument, got tile 8 of i32");
}

TEST(DslDiagnostics, LoadFloatOffsets) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value x = k.pointer("x", DType::F32);
    line = __LINE__; load(x, zeros({8}, DType::F32));
  }, "load", "offsets must be an i32 or i64 tile, got tile 8 of f32");
}

TEST(DslDiagnostics, LoadMaskNotBoolean) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value x = k.pointer("x", DType::F32);
    Value offs = arange(0, 8);
    line = __LINE__; load(x, offs, offs);
  }, "load", "mask must be an i1 tile or scalar, got tile 8 of i32");
}

TEST(DslDiagnostics, LoadMaskShape) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value x = k.pointer("x", DType::F32);
    Value offs = arange(0, 8);
    line = __LINE__; load(x, offs, arange(0, 4) < 2);
  }, "load", "cannot broadcast tile 4 of i1 to 8");
}

TEST(DslDiagnostics, LoadOtherWithoutMask) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value x = k.pointer("x", DType::F32);
    line = __LINE__; load(x, arange(0, 8), {}, 0.0);
  }, "load", "'other' given without a mask");
}

TEST(DslDiagnostics, StoreDtypeMismatch) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value y = k.pointer("y", DType::F16);
    line = __LINE__; store(y, arange(0, 8), zeros({8}, DType::F32));
  }, "store", "value is a tile 8 of f32 but the pointer is to f16 (cast with .to())");
}

TEST(DslDiagnostics, StoreValueShape) {
  expectDiag([](KernelBuilder &k, int &line) {
    Value y = k.pointer("y", DType::F32);
    line = __LINE__; store(y, arange(0, 8), zeros({4}, DType::F32));
  }, "store", "cannot broadcast tile 4 of f32 to 8");
}

TEST(DslDiagnostics, ArangeEmpty) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; arange(8, 8);
  }, "arange", "end (8) must be greater than start (8)");
}

TEST(DslDiagnostics, ProgramIdAxis) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; program_id(3);
  }, "program_id", "axis 3 out of range; the grid has axes 0, 1 and 2");
}

TEST(DslDiagnostics, ExpandDimsAxis) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = arange(0, 8);
    line = __LINE__; expand_dims(a, 3);
  }, "expand_dims", "axis 3 out of range for tile 8 of i32");
}

TEST(DslDiagnostics, UnsetConstant) {
  expectDiag([](KernelBuilder &k, int &line) {
    line = __LINE__; k.constant("BLOCK_K");
  }, "constant", "kernel 'diag' reads compile-time constant 'BLOCK_K', which the specialization does not set");
}

TEST(DslDiagnostics, DuplicateArgument) {
  expectDiag([](KernelBuilder &k, int &line) {
    k.pointer("x", DType::F32);
    line = __LINE__; k.scalar("x", DType::I32);
  }, "scalar", "argument 'x' is already declared");
}

TEST(DslDiagnostics, ScalarArgumentDtype) {
  expectDiag([](KernelBuilder &k, int &line) {
    line = __LINE__; k.scalar("h", DType::F16);
  }, "scalar", "argument 'h' has dtype f16; scalar arguments must be i32, i64 or f32");
}

TEST(DslDiagnostics, LoopCarriedTypeChange) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; for_range(0, 4, 1, {zeros({8}, DType::F32)},
                               [](Value, const std::vector<Value> &c) -> std::vector<Value> {
      return {c[0].to(DType::F16)};
    });
  }, "for_range", "carried value 0 changes from tile 8 of f32 to tile 8 of f16");
}

TEST(DslDiagnostics, LoopBodyArity) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; for_range(0, 4, 1, {0.0}, [](Value, const std::vector<Value> &) {
      return std::vector<Value>{};
    });
  }, "for_range", "body returned 0 values but the loop carries 1");
}

TEST(DslDiagnostics, LoopBoundFloat) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; for_range(0, 2.5, 1, {}, [](Value, const std::vector<Value> &) {
      return std::vector<Value>{};
    });
  }, "for_range", "upper bound must be an i32 scalar or integer literal, got literal 2.5");
}

TEST(DslDiagnostics, MathOnIntegers) {
  expectDiag([](KernelBuilder &, int &line) {
    line = __LINE__; exp2(arange(0, 4));
  }, "exp2", "expects a float operand, got tile 4 of i32");
}

TEST(DslDiagnostics, WhereNeedsMask) {
  expectDiag([](KernelBuilder &, int &line) {
    Value a = zeros({4}, DType::F32);
    line = __LINE__; where(a, a, a);
  }, "where", "condition must be an i1 tile or scalar, got tile 4 of f32");
}

TEST(DslDiagnostics, OutsideKernel) {
  try {
    arange(0, 4);
    ADD_FAILURE() << "no error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("error: arange: called outside a kernel body"),
              std::string::npos)
        << e.what();
  }
}

TEST(DslDiagnostics, KernelName) {
  expectLoomError([] { Kernel("bad name", [](KernelBuilder &) {}); },
                  "Kernel: name 'bad name' must contain only letters, digits and '_'");
  expectLoomError([] { Kernel("", [](KernelBuilder &) {}); }, "Kernel: name must not be empty");
}
