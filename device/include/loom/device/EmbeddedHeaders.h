// The device library headers as text, for NVRTC (which compiles in-memory
// sources): pairs of (include name, e.g. "loom/device/primitives.h", text).
// Generated at build time, so a binary does not depend on the source tree.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace loom::device {
const std::vector<std::pair<std::string, std::string>>& embedded_headers();
} // namespace loom::device
