//===- Compile.cpp - loom compile -----------------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/Compiler/CpuJit.h"
#include "loom/ops/Examples.h"
#include "loom/runtime/Kernel.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <fmt/format.h>

namespace loom::cli {

runtime::Specialization parseSpecialization(const Options &opts, const std::string &kernel) {
  runtime::Specialization spec;
  for (const ops::ExampleInfo &e : ops::exampleKernels())
    if (e.name == kernel)
      spec.constants = e.defaultConstants;
  for (const std::string &c : opts.getAll("const")) {
    auto [name, value] = splitAssignment(c, "--const");
    spec.constants[name] = parseInt(value, "--const " + name);
  }
  for (const std::string &b : opts.getAll("bind")) {
    auto [name, value] = splitAssignment(b, "--bind");
    if (value.find_first_of(".eEn") == std::string::npos) {
      spec.bindings[name] = parseInt(value, "--bind " + name);
      continue;
    }
    try {
      size_t used = 0;
      double d = std::stod(value, &used);
      if (used != value.size())
        throw std::invalid_argument(value);
      spec.bindings[name] = d;
    } catch (const std::exception &) {
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("--bind {}: '{}' is not a number", name, value));
    }
  }
  return spec;
}

int runCompile(int argc, char **argv) {
  Options opts("compile", {"kernel", "dtype", "emit", "const", "bind", "opt"}, {"timings"});
  opts.parse(argc, argv, 2);
  auto kernelName = opts.get("kernel");
  if (!kernelName)
    throw Error(ErrorCode::InvalidArgument, "loom compile: --kernel NAME is required");
  std::string dtypeText = opts.get("dtype").value_or(*kernelName == "matmul" ? "bf16" : "f32");
  auto dtype = parseDType(dtypeText);
  if (!dtype || (*dtype != DType::F32 && *dtype != DType::F16 && *dtype != DType::BF16))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: --dtype '{}' is not one of f32, f16, bf16", dtypeText));
  std::string emit = opts.get("emit").value_or("");
  if (!emit.empty() && emit != "mlir" && emit != "llvm")
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("loom compile: --emit '{}' is not one of mlir, llvm "
                            "(cuda, ptx and cubin need the CUDA backend)",
                            emit));
  dsl::Kernel kernel = ops::exampleKernel(*kernelName, *dtype);
  runtime::Specialization spec = parseSpecialization(opts, *kernelName);
  if (auto opt = opts.get("opt")) {
    int64_t level = parseInt(*opt, "--opt");
    if (level < 0 || level > 3)
      throw Error(ErrorCode::InvalidArgument, fmt::format("--opt {} is not in 0..3", level));
    spec.optLevel = static_cast<unsigned>(level);
  }

  auto afterStage = [&](const std::string &stage, mlir::ModuleOp module) {
    if (emit == "mlir") {
      std::printf("// ----- IR after stage '%s' -----\n", stage.c_str());
      std::string text;
      llvm::raw_string_ostream os(text);
      module.print(os);
      std::fputs(text.c_str(), stdout);
    } else if (emit == "llvm" && stage == "llvm") {
      std::fputs(compiler::translateToLLVMIRText(module, spec.optLevel).c_str(), stdout);
    }
  };
  auto compiled = runtime::compileUncached(kernel, spec, afterStage);
  if (opts.flag("timings")) {
    double total = 0;
    std::printf("// stage timings for %s (ms)\n", compiled->name().c_str());
    for (const auto &t : compiled->timings()) {
      std::printf("//   %-10s %8.3f\n", t.name.c_str(), t.milliseconds);
      total += t.milliseconds;
    }
    std::printf("//   %-10s %8.3f\n", "total", total);
  }
  if (emit.empty() && !opts.flag("timings"))
    std::printf("compiled %s (cache key %s)\n", compiled->name().c_str(),
                compiled->cacheKey().c_str());
  return 0;
}

} // namespace loom::cli
