//===- loom-opt.cpp - mlir-opt with the loom dialect and passes -----------===//
#include "loom/Compiler/Registration.h"

#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  loom::compiler::registerAllDialects(registry);
  loom::compiler::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Loom optimizer driver\n", registry));
}
