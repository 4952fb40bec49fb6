// Fixed-width integer names for the device library.
//
// NVRTC compiles the device library with no host headers, so <cstdint> is not
// available there; the builtin types are spelled out instead. On the host
// (emulation) the standard names are used so that both refer to one type.
#pragma once

#if defined(LOOM_DEVICE_EMULATION)
#include <cstdint>
namespace loom::device {
using std::uint16_t;
using std::uint32_t;
using std::uint64_t;
} // namespace loom::device
#else
namespace loom::device {
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
static_assert(sizeof(uint16_t) == 2 && sizeof(uint32_t) == 4 &&
                  sizeof(uint64_t) == 8,
              "device integer widths");
} // namespace loom::device
#endif
