// Global-memory race detection of the emulator (GlobalRaces.h).
#include "GlobalRaces.h"

namespace loom::device::emu {

namespace {
// The first earlier access of `e` that a new one races with.
GlobalRaces::Conflict conflict_of(const auto& e, bool write, uint64_t block, uint32_t epoch,
                                  uint16_t thread) {
  GlobalRaces::Conflict c;
  auto found = [&](bool wrote, uint64_t b, uint16_t t) {
    c.found = true, c.other_wrote = wrote, c.block = b, c.thread = t;
    return c;
  };
  if (e.writer_block != GlobalRaces::kNoBlock) {
    if (e.writer_block != block) return found(true, e.writer_block, e.writer);
    if (e.write_epoch == epoch && e.writer != thread) return found(true, block, e.writer);
  }
  if (!write || e.reader_block == GlobalRaces::kNoBlock) return c;
  if (e.reader_block != block) return found(false, e.reader_block, e.reader);
  if (e.other_reader_block != GlobalRaces::kNoBlock)
    return found(false, e.other_reader_block, GlobalRaces::kNoThread);
  if (e.read_epoch == epoch) {
    if (e.reader != thread) return found(false, block, e.reader);
    if (e.reader2 != GlobalRaces::kNoThread && e.reader2 != thread)
      return found(false, block, e.reader2);
  }
  return c;
}
} // namespace

GlobalRaces::Conflict GlobalRaces::access(uintptr_t addr, std::size_t bytes, bool write,
                                          uint64_t block, uint32_t epoch, uint16_t thread) {
  Conflict first;
  for (std::size_t i = 0; i < bytes; ++i) {
    const uintptr_t a = addr + i;
    Shard& s = shards_[(a >> 6) % kShards]; // a 64-byte line per shard
    std::lock_guard<std::mutex> lock(s.mutex);
    Entry& e = s.bytes[a];
    if (!first.found) {
      first = conflict_of(e, write, block, epoch, thread);
      if (first.found) first.addr = a;
    }
    if (write) {
      e.writer_block = block, e.write_epoch = epoch, e.writer = thread;
    } else if (e.reader_block == kNoBlock) {
      e.reader_block = block, e.read_epoch = epoch, e.reader = thread, e.reader2 = kNoThread;
    } else if (e.reader_block != block) {
      if (e.other_reader_block == kNoBlock) e.other_reader_block = block;
    } else if (e.read_epoch != epoch) {
      e.read_epoch = epoch, e.reader = thread, e.reader2 = kNoThread;
    } else if (e.reader != thread && e.reader2 == kNoThread) {
      e.reader2 = thread;
    }
  }
  return first;
}

} // namespace loom::device::emu
