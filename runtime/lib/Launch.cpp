//===- Launch.cpp - argument checks shared by every backend ---------------===//
#include "loom/runtime/Kernel.h"
#include "loom/runtime/LogicalGrid.h"
#include "loom/runtime/Stream.h"

#include "loom/Support/Error.h"

#include <cmath>
#include <fmt/format.h>

namespace loom::runtime {
std::string formatScalar(const ScalarValue &v);

namespace {
std::string argList(const std::vector<ArgInfo> &sig) {
  std::string s;
  for (const ArgInfo &a : sig)
    s += (s.empty() ? "" : ", ") + a.name;
  return s;
}

bool sameScalar(const ScalarValue &bound, const Arg &arg) {
  if (auto *i = std::get_if<int64_t>(&bound))
    return std::holds_alternative<int64_t>(arg.scalar()) && std::get<int64_t>(arg.scalar()) == *i;
  // f32 arguments are bound through a float attribute: compare in f32.
  return std::holds_alternative<double>(arg.scalar()) &&
         static_cast<float>(std::get<double>(arg.scalar())) ==
             static_cast<float>(std::get<double>(bound));
}
} // namespace

void CompiledKernel::launch(const Grid &grid, std::span<const Arg> args) const {
  checkLaunch(grid, args);
  run(grid, args);
}

void CompiledKernel::launch(Stream &stream, const Grid &grid, std::span<const Arg> args) const {
  checkLaunch(grid, args);
  bool cudaStream = stream.backend() == Backend::Cuda;
  if (cudaStream != (backend_ == Backend::Cuda))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}' ({} backend) cannot launch on {} stream '{}'", name_,
                            backendName(backend_), cudaStream ? "CUDA" : "CPU", stream.name()));
  // The work keeps the kernel and a copy of the arguments (not the buffers
  // they point to) alive until it runs.
  stream.submit([self = shared_from_this(), grid, argv = std::vector<Arg>(args.begin(), args.end()),
                 cudaStream](const StreamContext &context) {
    if (cudaStream)
      self->runOnStream(grid, argv, context.nativeStream);
    else
      self->run(grid, argv);
  });
}

void CompiledKernel::runOnStream(const Grid &grid, std::span<const Arg> args, void *) const {
  run(grid, args);
}

void CompiledKernel::checkLaunch(const Grid &grid, std::span<const Arg> args) const {
  for (int d = 0; d < 3; ++d)
    if (grid.dims[d] == 0)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("kernel '{}': grid dimension {} is 0; every grid "
                              "dimension must be at least 1",
                              name_, d));
  // The GPU's limits, on every backend: a launch cpu accepts runs on emu
  // and cuda too (larger grids go through launchLogical).
  for (int d = 0; d < 3; ++d)
    if (grid.dims[d] > kMaxGrid[size_t(d)])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("kernel '{}': grid ({}, {}, {}) exceeds the launch limits (x <= "
                              "2^31 - 1, y and z <= 65535) along axis {}; a larger grid needs "
                              "a dsl::LogicalGrid and runtime::launchLogical",
                              name_, grid.dims[0], grid.dims[1], grid.dims[2], d));
  if (grid.size() > kMaxGridPrograms)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}': grid of {} programs exceeds 2^31", name_, grid.size()));
  if (args.size() != signature_.size())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("kernel '{}' expects {} arguments ({}), got {}", name_,
                            signature_.size(), argList(signature_), args.size()));
  for (size_t i = 0; i < args.size(); ++i) {
    const ArgInfo &info = signature_[i];
    const Arg &arg = args[i];
    std::string where = fmt::format("argument {} ('{}') of kernel '{}'", i, info.name, name_);
    if (info.isPointer) {
      if (arg.kind() != Arg::Kind::Buffer)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{} expects a buffer of {}, got {}", where,
                                dtypeName(info.dtype), arg.describe()));
      if (arg.dtype() != info.dtype)
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("{} expects a buffer of {}, got {}", where,
                                dtypeName(info.dtype), arg.describe()));
      if (!arg.data())
        throw Error(ErrorCode::InvalidArgument, fmt::format("{} is a null pointer", where));
      continue;
    }
    if (arg.kind() != Arg::Kind::Scalar || arg.dtype() != info.dtype)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{} expects an {} scalar, got {}", where,
                              dtypeName(info.dtype), arg.describe()));
    auto bound = bindings_.find(info.name);
    if (bound != bindings_.end() && !sameScalar(bound->second, arg))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{} was specialized to {} but {} was passed", where,
                              formatScalar(bound->second), formatScalar(arg.scalar())));
  }
}

} // namespace loom::runtime
