//===- SumByKey.h - deterministic scatter-add as device kernels -*- C++ -*-===//
//
// out[e] = sum of values[i] over the i with keys[i] == e: the reduction
// behind the gradients of variant tensors, where every (batch, head, query,
// key) pair adds d loss / d (value read) to the element it read, and which
// element that is depends on the user's score_mod. Written as DSL kernels,
// so it runs where the pairs live (host memory on cpu/emu, device memory on
// cuda) on the attention kernels' stream, and emu runs the CUDA code.
//
// Two methods, both deterministic without atomics, both in pair order per
// element:
//   - Sequential (the default where the device is the host, the cpu
//     backend): one pass over the pairs on the stream's thread, summing in
//     double, which no parallel sort beats there (4M pairs: about 50 ms;
//     the radix kernels below take about 560 ms on 2 cores);
//   - Radix (the default on emu and cuda, so emu runs the code a GPU runs):
// a stable LSD radix sort of the keys, 4
// bits per pass (each pass counts every block's digits, scans the counts,
// and scatters each key to its rank), then the run of each element in the
// sorted keys is found (where the key changes) and one program per block of
// elements sums each run in index order in f32, CHUNK values at a time.
// Every element's sum therefore adds the same values in the same order on
// every run. Cost: ceil(bit_width(numElements) / 4) passes over the n
// pairs (12 bytes read and written each), scratch of 16 bytes per pair and
// 8 per element besides the caller's keys and values.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_OPS_SUMBYKEY_H
#define LOOM_OPS_SUMBYKEY_H

#include "loom/dsl/Kernel.h"
#include "loom/runtime/Kernel.h"
#include "loom/runtime/Memory.h"

#include <memory>
#include <string>
#include <vector>

namespace loom::runtime {
class Stream;
}

namespace loom::ops {

/// The most pairs, and elements, one reduction takes (its positions and
/// keys are i32, with a block of headroom).
inline constexpr int64_t kSumByKeyMaxCount = (int64_t(1) << 31) - 4096;

/// Per program: how many of its BLOCK keys have each digit (rest % 16 of
/// their remaining bits `rest`, i32 >= 0), stored digit-major: counts[d *
/// blocks + program]. Arguments: rest, counts (i32), n, blocks (i32).
/// Logical grid (blocks = ceil(n / BLOCK)); constants BLOCK, SUB.
dsl::Kernel radixCountKernel();
/// One program: the exclusive prefix sum of `entries` counts (i32) into
/// `before`. Arguments: counts, before (i32), entries (i32). Constant SCAN.
dsl::Kernel radixScanKernel();
/// Per program: its BLOCK (rest, key, value) triples to their places in
/// the stable order by digit, rest / 16 going on for the next pass.
/// Arguments: rest, keys, values, rest_out, keys_out, values_out, before
/// (i32 but values, f32), n, blocks (i32). Logical grid (blocks);
/// constants BLOCK, SUB (dividing it).
dsl::Kernel radixScatterKernel();
/// Per program: of BLOCK sorted keys, where each run of one key (below
/// `elements`) starts and ends: starts[key] = first position, ends[key] =
/// last + 1. Arguments: keys, starts, ends (i32), n, elements (i32).
/// Logical grid (ceil(n / BLOCK)); constant BLOCK.
dsl::Kernel runBoundsKernel();
/// keys[i] = value for i < n (i32). Arguments: keys, n, value (i32).
/// Logical grid (ceil(n / BLOCK)); constant BLOCK.
dsl::Kernel keyFillKernel();
/// Per program: BLOCK_E elements e of `out` (f32) get the sum of
/// values[starts[e] .. ends[e]) in order (added to what out holds with
/// `accumulate`). Arguments: values (f32), starts, ends (i32), out (f32),
/// elements (i32). Logical grid (ceil(elements / BLOCK_E)); constants
/// BLOCK_E, CHUNK.
dsl::Kernel segmentSumKernel(bool accumulate);

/// The constants SumByKey compiles its kernels with (BLOCK, SUB, SCAN,
/// BLOCK_E, CHUNK).
dsl::Constants sumByKeyConstants();

enum class SumByKeyMethod { Auto, Sequential, Radix };

/// Scratch and launches of reductions of `count` pairs on `backend` (one
/// after another on a stream: the scratch is reused). The caller's keys
/// (i32 in [0, numElements + 1]; numElements itself means "no element",
/// numElements + 1 "a read outside the elements", an error) and
/// values (f32) are in the backend's memory and are overwritten (they are
/// one of the sort's two buffers).
class SumByKey {
public:
  /// Throws InvalidArgument when `count` exceeds what the kernels' i32
  /// positions index (2^31 - 2^12). Compiles the kernels, so that a
  /// compile error comes before any launch.
  /// Auto: Sequential on the cpu backend, Radix on emu and cuda;
  /// Sequential needs host memory (cpu, emu).
  SumByKey(runtime::Backend backend, int64_t count, unsigned cpuThreads = 0,
           SumByKeyMethod method = SumByKeyMethod::Auto);

  /// out[e] (+)= sum over i < count with keys[i] == e of values[i], for
  /// e < numElements (at most 2^31 - 2^12, else InvalidArgument), enqueued
  /// on `stream` (null: run now). A key of numElements + 1 fails the run
  /// with InvalidArgument(outsideError), and `out` is then unspecified:
  /// thrown now without a stream, else the stream's error (its
  /// synchronize() rethrows it), except on cuda, where run() waits for the
  /// sort and throws it itself. This object and the buffers must stay alive
  /// until the stream has run it.
  void run(runtime::Stream *stream, int32_t *keys, float *values, float *out,
           int64_t numElements, bool accumulate, const std::string &outsideError);
  /// keys[i] = value for i < count, on `stream` (null: now): pairs a
  /// producer may skip then read as "no element".
  void fill(runtime::Stream *stream, int32_t *keys, int32_t value);

private:
  void fillI32(runtime::Stream *stream, int32_t *x, int64_t n, int32_t value);
  void failIfAnyOutside(runtime::Stream *stream, const int32_t *lastSortedKey,
                        int64_t numElements, const std::string &outsideError);

  runtime::Backend backend_;
  bool radix_;
  int64_t count_, blocks_;
  runtime::Memory keysAlt_, valuesAlt_, rest_[2], counts_, before_;
  /// Each run's element boundaries (starts, ends), alive until the object.
  std::vector<runtime::Memory> bounds_;
  std::shared_ptr<const runtime::CompiledKernel> kernels_[7];
};

} // namespace loom::ops

#endif
