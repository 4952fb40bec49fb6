//===- Packing.cpp --------------------------------------------------------===//
#include "Packing.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/xxhash.h"

#include <cstring>
#include <fmt/format.h>

namespace loom::runtime {

std::string hashHex(std::string_view text) {
  llvm::XXH128_hash_t h =
      llvm::xxh3_128bits(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(text.data()),
                                                 text.size()));
  return fmt::format("{:016x}{:016x}", h.high64, h.low64);
}

uint64_t scalarBits(const Arg &arg) {
  uint64_t bits = 0;
  switch (arg.dtype()) {
  case DType::F32: {
    float v = static_cast<float>(std::get<double>(arg.scalar()));
    std::memcpy(&bits, &v, 4);
    break;
  }
  case DType::I32: {
    int32_t v = static_cast<int32_t>(std::get<int64_t>(arg.scalar()));
    std::memcpy(&bits, &v, 4);
    break;
  }
  default: {
    int64_t v = std::get<int64_t>(arg.scalar());
    std::memcpy(&bits, &v, 8);
  }
  }
  return bits;
}

} // namespace loom::runtime
