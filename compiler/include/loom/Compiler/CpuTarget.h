//===- CpuTarget.h - the instruction-set level of CPU kernels ---*- C++ -*-===//
//
// CPU kernels are generated for a named target, not implicitly for whatever
// CPU compiles them: code generation, the vector width of
// loom-vectorize-elementwise and the register blocking of loom-vectorize-dot
// all follow it, and it is part of the kernel cache key. A kernel built for
// x86-64-v3 on an AVX-512 machine is therefore the same code an AVX2-only
// machine builds, which is how one machine can test what another runs.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_COMPILER_CPUTARGET_H
#define LOOM_COMPILER_CPUTARGET_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace loom::compiler {

struct CpuTarget {
  /// What was asked for: "host" or an x86-64 microarchitecture level
  /// (x86-64-v2: SSE4.2; x86-64-v3: AVX2, FMA, F16C; x86-64-v4: AVX-512).
  std::string name;
  /// LLVM CPU and feature string handed to the code generator.
  std::string cpu;
  std::string features;
  /// Width of the vector registers the kernels are blocked for.
  unsigned vectorBits = 128;

  int64_t f32Lanes() const { return vectorBits / 32; }
  /// "loom-vectorize-dot" options: each row of C in two vector registers (one
  /// B row feeds two FMAs per A broadcast), and as many rows as leave
  /// registers for A and B: 6 rows (12 accumulators) of the 32 AVX-512
  /// registers, 4 rows (8) of the 16 AVX2 or SSE ones.
  std::string dotMicroKernelOptions() const;
  /// Part of the kernel cache key: the name and what it resolved to.
  std::string key() const { return name + ":" + cpu + ":" + features; }
};

/// The names LOOM_CPU_TARGET and Specialization::cpuTarget accept.
const std::vector<std::string> &cpuTargetNames();

/// Resolves `requested`: empty means $LOOM_CPU_TARGET, and "host" when that is
/// unset or empty. Throws loom::Error: InvalidArgument for an unknown name
/// (listing the valid ones), Unsupported for a level this host cannot run
/// (naming the missing features) or an x86 level on a non-x86 host.
CpuTarget resolveCpuTarget(const std::string &requested = {});

/// The host CPU as `loom version` reports it.
struct HostCpu {
  std::string name; // LLVM's name for it, e.g. znver3, sapphirerapids
  /// The features that decide Loom's CPU code: AVX2, AVX-512F, AVX512-BF16,
  /// AMX, F16C, FMA, in that order, with whether the host has each.
  std::vector<std::pair<std::string, bool>> features;
};
HostCpu hostCpu();

} // namespace loom::compiler

#endif
