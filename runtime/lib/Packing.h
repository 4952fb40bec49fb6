//===- Packing.h - hashing and argument bits shared by the backends -*- C++ -*-===//
#ifndef LOOM_RUNTIME_LIB_PACKING_H
#define LOOM_RUNTIME_LIB_PACKING_H

#include "loom/runtime/Kernel.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace loom::runtime {

/// 128-bit xxh3 of `text` as 32 hex digits: every cache key.
std::string hashHex(std::string_view text);

/// A scalar argument's bits as the kernel reads them: i32 and f32 in the
/// low 4 bytes, i64 in all 8 (little-endian).
uint64_t scalarBits(const Arg &arg);

} // namespace loom::runtime

#endif
