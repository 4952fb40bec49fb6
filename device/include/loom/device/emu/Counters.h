// Exact per-launch event counts of an emulated launch (LaunchConfig::counters,
// or LOOM_EMU_COUNTERS=1 to print them to stderr after each launch).
//
// Counts are warp instructions ("requests"), summed over every warp of every
// block, plus what each request costs in the memory system, computed from
// the 32 lanes' own addresses:
//   - shared memory: wavefronts (bank conflicts), 32 banks of 4 bytes. A
//     request costs as many wavefronts as the largest number of distinct
//     4-byte words any one bank holds among the active lanes' bytes; lanes
//     reading the same word share it (broadcast), so 32 lanes on one word
//     cost 1, 32 consecutive floats 1, 32 consecutive 16-byte vectors 4.
//     ldmatrix .xN is N phases of 8 rows of 16 bytes, each phase costing
//     its own wavefronts by the same rule (conflict-free: N in all).
//   - global memory: 32-byte sectors, the distinct aligned 32-byte segments
//     the active lanes' bytes touch (32 consecutive floats: 4 sectors; a
//     stride of 32 floats: 32).
// A warp instruction is matched across lanes by (kernel-level op instance,
// tile-library call site, occurrence at that site within the op): lanes
// that skip an access under a predicate must skip the same occurrences, as
// the tile layer's predicated global accesses do (they record the lane as
// inactive rather than skipping it).
//
// Loops that the generated code marks (LOOM_LOOP_ITER/LOOM_LOOP_END, see
// tile/core.h) get their own counts: every event of a thread inside a
// marked loop is counted for that loop and each marked loop around it, and
// `iterations` sums the iterations of the loop over all blocks, so
// counts / iterations is the cost of one iteration for one CTA.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loom::device::emu {

struct CounterSet {
  /// mma warp instructions by PTX name, e.g. "mma.m16n8k16.f32.f16".
  std::map<std::string, uint64_t> mma;
  uint64_t ldmatrix = 0, ldmatrix_wavefronts = 0;
  uint64_t shared_loads = 0, shared_load_wavefronts = 0;   // ld.shared
  uint64_t shared_stores = 0, shared_store_wavefronts = 0; // st.shared
  /// cp.async: 16-byte chunks (thread instructions), bytes read from global
  /// (the src-size of each), warp requests and the 32-byte sectors they read.
  uint64_t cp_async_chunks = 0, cp_async_bytes = 0;
  uint64_t cp_async_requests = 0, cp_async_sectors = 0;
  uint64_t global_loads = 0, global_load_sectors = 0;   // ld.global requests
  uint64_t global_stores = 0, global_store_sectors = 0; // st.global requests
  uint64_t barriers = 0; // bar.sync, once per warp that takes part
  uint64_t shuffles = 0; // shfl.sync warp instructions
  uint64_t ex2 = 0;      // ex2.approx (MUFU) warp instructions

  uint64_t mma_total() const;
  CounterSet& operator+=(const CounterSet& o);
  bool operator==(const CounterSet&) const = default;
};

struct LoopCounters {
  uint32_t id = 0;         // the generated code's loop id (per kernel)
  uint64_t iterations = 0; // summed over blocks
  CounterSet counts;       // events inside the loop, all iterations and blocks
};

struct Counters {
  uint64_t blocks = 0;
  CounterSet total;
  std::vector<LoopCounters> loops; // ascending id; only loops that ran

  Counters& operator+=(const Counters& o);
  /// A readable table: per launch, per CTA, and per iteration of each loop.
  std::string to_string() const;
};

// ---- the cost rules (also used by the tests) --------------------------------------

/// Wavefronts of one shared-memory warp request: lane l (active when bit l of
/// `active` is set) touches bytes [addr[l], addr[l] + bytes[l]). 0 if none.
unsigned shared_wavefronts(const uintptr_t addr[32], const uint32_t bytes[32], uint32_t active);

/// Distinct 32-byte global sectors the active lanes' bytes touch.
unsigned global_sectors(const uintptr_t addr[32], const uint32_t bytes[32], uint32_t active);

/// Wavefronts of ldmatrix .x`num`: rows[8j + r] is the 16-byte row r of
/// matrix j; each matrix is one phase.
unsigned ldmatrix_wavefronts(const uintptr_t rows[], unsigned num);

} // namespace loom::device::emu
