//===- Arg.cpp - launch arguments and specializations ---------------------===//
#include "loom/runtime/Kernel.h"

#include "loom/Compiler/CpuTarget.h"
#include "loom/Support/Error.h"

#include <fmt/format.h>

namespace loom::runtime {

std::string formatScalar(const ScalarValue &v) {
  if (auto *i = std::get_if<int64_t>(&v))
    return std::to_string(*i);
  return fmt::format("{}", std::get<double>(v));
}

Arg Arg::buffer(const void *data, DType dtype, size_t numElements) {
  Arg a(Kind::Buffer, dtype, int64_t(0));
  a.data_ = data;
  a.numElements_ = numElements;
  return a;
}

std::string Arg::describe() const {
  if (kind_ == Kind::Buffer)
    return fmt::format("a buffer of {} {} elements", numElements_, dtypeName(dtype_));
  return fmt::format("an {} scalar ({})", dtypeName(dtype_), formatScalar(scalar_));
}

const char *backendName(Backend b) {
  switch (b) {
  case Backend::Auto: return "auto";
  case Backend::Cpu: return "cpu";
  case Backend::Emu: return "emu";
  case Backend::Cuda: return "cuda";
  }
  return "?";
}

Backend parseBackend(const std::string &name) {
  for (Backend b : {Backend::Auto, Backend::Cpu, Backend::Emu, Backend::Cuda})
    if (name == backendName(b))
      return b;
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("unknown backend '{}' (expected cpu, emu, cuda or auto)", name));
}

std::string Specialization::key() const {
  Backend b = resolveBackend(backend);
  std::string k = fmt::format("backend={};opt={};", backendName(b), optLevel);
  if (b != Backend::Cpu)
    k += fmt::format("threads={};arch={};stages={};", numThreads, arch, numStages);
  else
    k += fmt::format("cpu={};", compiler::resolveCpuTarget(cpuTarget).key());
  if (b == Backend::Cpu && cpuThreads != 0)
    k += fmt::format("cputhreads={};", cpuThreads);
  for (const auto &[name, v] : constants)
    k += fmt::format("c:{}={};", name, v);
  for (const auto &[name, v] : bindings)
    k += fmt::format("b:{}={}{};", name, std::holds_alternative<int64_t>(v) ? "i" : "f",
                     formatScalar(v));
  return k;
}

} // namespace loom::runtime
