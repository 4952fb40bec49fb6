// Shadow state of the emulator's optional global-memory race detector
// (LaunchConfig::detect_global_races): per launch, a hash map from each byte
// that some thread touched to its last writer and its readers, so that the
// cost is proportional to the bytes the launch touches. Blocks run on
// several workers at once: the map is split into shards with a lock each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace loom::device::emu {

class GlobalRaces {
public:
  static constexpr uint64_t kNoBlock = ~0ull;
  static constexpr uint16_t kNoThread = 0xffff;

  /// The access (if any) that a new access races with.
  struct Conflict {
    bool found = false;
    bool other_wrote = false;  // the earlier access was a write
    uint64_t block = kNoBlock; // its block (linear index)
    uint16_t thread = kNoThread; // its thread, kNoThread when unknown
    uintptr_t addr = 0;          // the byte
  };

  /// Records an access of [addr, addr + bytes) by thread `thread` of block
  /// `block` in barrier epoch `epoch` of that block, and returns the first
  /// earlier access it races with: a write and another access of one byte
  /// from different blocks, or from different threads of one block in one
  /// epoch (no barrier between them).
  Conflict access(uintptr_t addr, std::size_t bytes, bool write, uint64_t block, uint32_t epoch,
                  uint16_t thread);

private:
  struct Entry {
    uint64_t writer_block = kNoBlock;
    uint32_t write_epoch = 0;
    uint16_t writer = kNoThread;
    // Readers: the first block that read and its readers of its latest
    // epoch (two distinct threads), and another block that read, if any.
    uint64_t reader_block = kNoBlock, other_reader_block = kNoBlock;
    uint32_t read_epoch = 0;
    uint16_t reader = kNoThread, reader2 = kNoThread;
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<uintptr_t, Entry> bytes;
  };
  static constexpr unsigned kShards = 64;
  Shard shards_[kShards];
};

} // namespace loom::device::emu
