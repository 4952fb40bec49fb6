// Helpers for running emulated device code in tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>

#include "loom/device/primitives.h"

namespace loom::device::test {

// Runs body on every thread of one block of `threads` threads.
inline void run_block(unsigned threads, std::size_t shared_bytes,
                      const std::function<void()>& body, const char* name = "test") {
  emu::LaunchConfig c;
  c.kernel_name = name;
  c.block = emu::dim3(threads);
  c.shared_bytes = shared_bytes;
  c.workers = 1;
  emu::launch(c, body);
}

// The EmuError message of running body on one block, or "" if none.
inline std::string launch_error(unsigned threads, std::size_t shared_bytes,
                                const std::function<void()>& body,
                                const char* name = "test") {
  try {
    run_block(threads, shared_bytes, body, name);
  } catch (const EmuError& e) {
    return e.what();
  }
  return "";
}

inline uint32_t pack(uint16_t lo, uint16_t hi) { return (uint32_t)lo | ((uint32_t)hi << 16); }

} // namespace loom::device::test
