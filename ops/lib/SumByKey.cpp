//===- SumByKey.cpp - deterministic scatter-add as device kernels ---------===//
//
// A stable LSD radix sort, 4 bits a pass, then a segmented sum, all in i32
// positions; see SumByKey.h for why it is deterministic and what it costs.
// Prefix sums and ranks inside a tile are masked sums over a SUB x SUB
// triangle (the DSL has no scan). Each pass reads the key's remaining bits
// from its own stream (the previous pass's key / 16), so digits come from a
// division by a constant: a runtime divisor has no vector instruction on
// CPUs.
//
//===----------------------------------------------------------------------===//
#include "loom/ops/SumByKey.h"

#include "loom/Support/Error.h"
#include "loom/dsl/Grid.h"
#include "loom/runtime/LogicalGrid.h"
#include "loom/runtime/Stream.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <functional>
#include <string>
#include <vector>
#include <fmt/format.h>

namespace loom::ops {
using namespace loom::dsl;

namespace {
constexpr int64_t kRadix = 16;    // digit values per pass (4 bits)
constexpr int64_t kBlock = 2048;  // keys per count/scatter/bounds program
constexpr int64_t kSub = 32;      // keys per step inside a program
constexpr int64_t kScan = 64;     // counts per step of the scan
constexpr int64_t kBlockE = 128;  // elements per segment-sum program
constexpr int64_t kChunk = 8;     // values per element per segment-sum step

/// prefix[i] = sum of x[j] for j < i, over a 1-D i32 tile of `n`.
Value exclusivePrefix(Value x, int64_t n) {
  Value idx = arange(0, n);
  Value before = expand_dims(idx, 0) < expand_dims(idx, 1); // [i, j]: j < i
  return sum(where(before, expand_dims(x, 0), 0), 1);
}

/// [SUB, RADIX]: whether key i's digit is d (a digit of -1 matches none).
Value oneHot(Value digit) {
  return expand_dims(digit, 1) == expand_dims(arange(0, kRadix), 0);
}

/// The digit of each valid key's remaining bits; -1 past the end.
Value digitOf(Value rest, Value ok) { return where(ok, rest % kRadix, -1); }
} // namespace

Kernel radixCountKernel() {
  return Kernel("radix_count_i32", [](KernelBuilder &kb) {
    Value rest = kb.pointer("rest", DType::I32), counts = kb.pointer("counts", DType::I32);
    Value n = kb.scalar("n", DType::I32), blocks = kb.scalar("blocks", DType::I32);
    int64_t block = kb.constant("BLOCK"), sub = kb.constant("SUB");
    LogicalGrid grid(kb);
    Value p = grid.programId(0);
    Value total = for_range(0, block / sub, 1, {zeros({kRadix}, DType::I32)},
                            [&](Value step, const std::vector<Value> &c) -> std::vector<Value> {
      Value pos = p * block + step * sub + arange(0, sub);
      Value ok = pos < n;
      Value digit = digitOf(load(rest, pos, ok, 0), ok);
      return {c[0] + sum(oneHot(digit).to(DType::I32), 0)};
    })[0];
    // Digit-major, so that one scan orders keys by digit, then by block.
    store(counts, arange(0, kRadix) * blocks + p, total);
  });
}

Kernel radixScanKernel() {
  return Kernel("radix_scan_i32", [](KernelBuilder &kb) {
    Value counts = kb.pointer("counts", DType::I32), before = kb.pointer("before", DType::I32);
    Value entries = kb.scalar("entries", DType::I32);
    int64_t scan = kb.constant("SCAN");
    Value idx = arange(0, scan);
    Value steps = (entries + (scan - 1)) / scan;
    for_range(0, steps, 1, {sum(zeros({1}, DType::I32), 0)},
              [&](Value step, const std::vector<Value> &c) -> std::vector<Value> {
      Value at = step * scan + idx;
      Value ok = at < entries;
      Value x = load(counts, at, ok, 0);
      store(before, at, c[0] + exclusivePrefix(x, scan), ok);
      return {c[0] + sum(x, 0)};
    });
  });
}

Kernel radixScatterKernel() {
  return Kernel("radix_scatter_i32_f32", [](KernelBuilder &kb) {
    Value rest = kb.pointer("rest", DType::I32), keys = kb.pointer("keys", DType::I32);
    Value values = kb.pointer("values", DType::F32);
    Value restOut = kb.pointer("rest_out", DType::I32), keysOut = kb.pointer("keys_out", DType::I32);
    Value valuesOut = kb.pointer("values_out", DType::F32);
    Value before = kb.pointer("before", DType::I32);
    Value n = kb.scalar("n", DType::I32), blocks = kb.scalar("blocks", DType::I32);
    int64_t block = kb.constant("BLOCK"), sub = kb.constant("SUB");
    LogicalGrid grid(kb);
    Value p = grid.programId(0);
    // Where this program's keys of each digit start, and (carried) how many
    // of them the steps so far placed: a key goes after every earlier key
    // of its digit, so equal digits keep their order.
    Value base = load(before, arange(0, kRadix) * blocks + p);
    Value idx = arange(0, sub);
    Value earlier = expand_dims(idx, 0) < expand_dims(idx, 1); // [i, j]: j < i
    for_range(0, block / sub, 1, {zeros({kRadix}, DType::I32)},
              [&](Value step, const std::vector<Value> &c) -> std::vector<Value> {
      Value pos = p * block + step * sub + idx;
      Value ok = pos < n;
      Value r = load(rest, pos, ok, 0);
      Value digit = digitOf(r, ok);
      Value hot = oneHot(digit);
      Value same = earlier & (expand_dims(digit, 0) == expand_dims(digit, 1));
      Value rank = sum(same.to(DType::I32), 1);
      Value start = sum(where(hot, expand_dims(base + c[0], 0), 0), 1);
      Value dest = start + rank;
      store(restOut, dest, r / kRadix, ok);
      store(keysOut, dest, load(keys, pos, ok, 0), ok);
      store(valuesOut, dest, load(values, pos, ok, 0.0), ok);
      return {c[0] + sum(hot.to(DType::I32), 0)};
    });
  });
}

Kernel runBoundsKernel() {
  return Kernel("run_bounds_i32", [](KernelBuilder &kb) {
    Value keys = kb.pointer("keys", DType::I32);
    Value starts = kb.pointer("starts", DType::I32), ends = kb.pointer("ends", DType::I32);
    Value n = kb.scalar("n", DType::I32), elements = kb.scalar("elements", DType::I32);
    int64_t block = kb.constant("BLOCK");
    LogicalGrid grid(kb);
    Value pos = grid.programId(0) * block + arange(0, block);
    Value ok = pos < n;
    // Keys are >= 0, so -1 differs from every neighbour past either end.
    Value key = load(keys, pos, ok, 0);
    Value prev = load(keys, pos - 1, ok & (pos > 0), -1);
    Value next = load(keys, pos + 1, pos + 1 < n, -1);
    Value counted = ok & (key < elements);
    store(starts, key, pos, counted & (key != prev));
    store(ends, key, pos + 1, counted & (key != next));
  });
}

Kernel keyFillKernel() {
  return Kernel("key_fill_i32", [](KernelBuilder &kb) {
    Value keys = kb.pointer("keys", DType::I32);
    Value n = kb.scalar("n", DType::I32), value = kb.scalar("value", DType::I32);
    int64_t block = kb.constant("BLOCK");
    LogicalGrid grid(kb);
    Value pos = grid.programId(0) * block + arange(0, block);
    store(keys, pos, full({block}, value, DType::I32), pos < n);
  });
}

Kernel segmentSumKernel(bool accumulate) {
  return Kernel(accumulate ? "segment_sum_f32_acc" : "segment_sum_f32",
                [accumulate](KernelBuilder &kb) {
    Value values = kb.pointer("values", DType::F32);
    Value starts = kb.pointer("starts", DType::I32), ends = kb.pointer("ends", DType::I32);
    Value out = kb.pointer("out", DType::F32);
    Value elements = kb.scalar("elements", DType::I32);
    int64_t blockE = kb.constant("BLOCK_E"), chunk = kb.constant("CHUNK");
    LogicalGrid grid(kb);
    Value e = grid.programId(0) * blockE + arange(0, blockE);
    Value ok = e < elements;
    Value start = load(starts, e, ok, 0), end = load(ends, e, ok, 0);
    Value longest = max(end - start, 0);
    Value cols = expand_dims(arange(0, chunk), 0);
    // Each element's run in order, CHUNK values a step.
    Value total = for_range(0, longest, chunk, {zeros({blockE}, DType::F32)},
                            [&](Value it, const std::vector<Value> &c) -> std::vector<Value> {
      Value pos = expand_dims(start, 1) + it + cols;
      Value in = pos < expand_dims(end, 1);
      return {c[0] + sum(load(values, pos, in, 0.0), 1)};
    })[0];
    if (accumulate)
      total = total + load(out, e, ok, 0.0);
    store(out, e, total, ok);
  });
}

dsl::Constants sumByKeyConstants() {
  return {{"BLOCK", kBlock}, {"SUB", kSub}, {"SCAN", kScan}, {"BLOCK_E", kBlockE},
          {"CHUNK", kChunk}};
}

namespace {
enum Which { Count, Scan, Scatter, Bounds, Fill, Sum, SumAcc, NumKernels };

std::shared_ptr<const runtime::CompiledKernel> compiled(Which which, runtime::Backend backend,
                                                        unsigned cpuThreads) {
  static const Kernel kernels[NumKernels] = {
      radixCountKernel(), radixScanKernel(),       radixScatterKernel(),    runBoundsKernel(),
      keyFillKernel(),    segmentSumKernel(false), segmentSumKernel(true)};
  runtime::Specialization spec;
  spec.backend = backend;
  spec.cpuThreads = cpuThreads;
  spec.numThreads = 128;
  spec.constants = sumByKeyConstants();
  return runtime::compile(kernels[which], spec);
}

void launch(runtime::Stream *stream, const runtime::CompiledKernel &k, int64_t programs,
            std::vector<runtime::Arg> args) {
  runtime::LogicalGridSize grid{std::max<int64_t>(programs, 1), 1, 1};
  if (stream)
    runtime::launchLogical(k, *stream, grid, args);
  else
    runtime::launchLogical(k, grid, args);
}

runtime::Memory i32s(runtime::Backend backend, int64_t n) {
  return runtime::Memory(backend, size_t(std::max<int64_t>(n, 1)) * 4);
}
} // namespace

SumByKey::SumByKey(runtime::Backend backend, int64_t count, unsigned cpuThreads,
                   SumByKeyMethod method)
    : backend_(runtime::resolveBackend(backend)), count_(count),
      blocks_((count + kBlock - 1) / kBlock) {
  if (count < 0 || count > kSumByKeyMaxCount)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sum by key: {} pairs; at most {} (i32 positions)", count,
                            kSumByKeyMaxCount));
  radix_ = method == SumByKeyMethod::Auto ? backend_ != runtime::Backend::Cpu
                                          : method == SumByKeyMethod::Radix;
  if (!radix_ && backend_ == runtime::Backend::Cuda)
    throw Error(ErrorCode::InvalidArgument,
                "sum by key: the sequential method reads host memory; the cuda backend's "
                "buffers are device memory");
  if (!radix_)
    return;
  keysAlt_ = i32s(backend_, count), valuesAlt_ = i32s(backend_, count);
  rest_[0] = i32s(backend_, count), rest_[1] = i32s(backend_, count);
  counts_ = i32s(backend_, kRadix * blocks_), before_ = i32s(backend_, kRadix * blocks_);
  for (int w = 0; w < NumKernels; ++w)
    kernels_[w] = compiled(Which(w), backend_, cpuThreads);
}

namespace {
/// The caller's error for a key past "no element" (numElements + 1).
void failIfOutside(int32_t key, int64_t numElements, const std::string &outsideError) {
  if (key > numElements)
    throw Error(ErrorCode::InvalidArgument, outsideError);
}

/// Runs `work` now, or in `stream`'s order (on its thread: cpu and emu).
void onHost(runtime::Stream *stream, std::function<void()> work) {
  if (stream)
    stream->submit([work = std::move(work)](const runtime::StreamContext &) { work(); });
  else
    work();
}
} // namespace

void SumByKey::fill(runtime::Stream *stream, int32_t *keys, int32_t value) {
  if (radix_)
    return fillI32(stream, keys, count_, value);
  onHost(stream, [keys, n = count_, value] { std::fill_n(keys, n, value); });
}

void SumByKey::fillI32(runtime::Stream *stream, int32_t *x, int64_t n, int32_t value) {
  launch(stream, *kernels_[Fill], (n + kBlock - 1) / kBlock,
         {runtime::Arg::buffer(x, DType::I32, size_t(std::max<int64_t>(n, 1))),
          runtime::Arg::i32(int32_t(n)), runtime::Arg::i32(value)});
}

void SumByKey::run(runtime::Stream *stream, int32_t *keys, float *values, float *out,
                   int64_t numElements, bool accumulate, const std::string &outsideError) {
  using runtime::Arg;
  if (numElements < 0 || numElements > kSumByKeyMaxCount)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("sum by key: {} elements; at most {} (i32 keys)", numElements,
                            kSumByKeyMaxCount));
  if (numElements == 0)
    return;
  if (!radix_)
    return onHost(stream, [=, n = count_] {
      std::vector<double> sum(size_t(numElements), 0.0);
      if (accumulate)
        std::copy(out, out + numElements, sum.begin());
      for (int64_t i = 0; i < n; ++i) {
        failIfOutside(keys[i], numElements, outsideError);
        if (keys[i] >= 0 && keys[i] < numElements) // numElements: no element
          sum[size_t(keys[i])] += values[i];
      }
      std::copy(sum.begin(), sum.end(), out);
    });
  size_t n = size_t(std::max<int64_t>(count_, 1)), entries = size_t(kRadix * std::max<int64_t>(blocks_, 1));
  int32_t *k[2] = {keys, keysAlt_.as<int32_t>()};
  float *v[2] = {values, valuesAlt_.as<float>()};
  if (count_ == 0) // no pairs: the caller's buffers may have no storage
    k[0] = k[1], v[0] = v[1];
  // Keys are at most numElements + 1 (the "outside" key): its bits suffice.
  int bits = count_ > 0 ? std::bit_width(uint64_t(numElements) + 1) : 0;
  int passes = (bits + 3) / 4;
  Arg count = Arg::i32(int32_t(count_)), blocks = Arg::i32(int32_t(blocks_));
  for (int pass = 0; pass < passes; ++pass) {
    int from = pass % 2, to = 1 - from;
    // The first pass reads the keys themselves as their remaining bits.
    int32_t *rest = pass == 0 ? keys : rest_[from].as<int32_t>();
    launch(stream, *kernels_[Count], blocks_,
           {Arg::buffer(rest, DType::I32, n), Arg::buffer(counts_.data(), DType::I32, entries),
            count, blocks});
    launch(stream, *kernels_[Scan], 1,
           {Arg::buffer(counts_.data(), DType::I32, entries),
            Arg::buffer(before_.data(), DType::I32, entries),
            Arg::i32(int32_t(kRadix * blocks_))});
    launch(stream, *kernels_[Scatter], blocks_,
           {Arg::buffer(rest, DType::I32, n), Arg::buffer(k[from], DType::I32, n),
            Arg::buffer(v[from], DType::F32, n),
            Arg::buffer(rest_[to].data(), DType::I32, n), Arg::buffer(k[to], DType::I32, n),
            Arg::buffer(v[to], DType::F32, n),
            Arg::buffer(before_.data(), DType::I32, entries), count, blocks});
  }
  int sorted = passes % 2;
  // Each element's run [start, end) of the sorted keys (empty where no
  // pair read it), kept with this object until the stream has run.
  runtime::Memory starts = i32s(backend_, numElements), ends = i32s(backend_, numElements);
  fillI32(stream, starts.as<int32_t>(), numElements, 0);
  fillI32(stream, ends.as<int32_t>(), numElements, 0);
  Arg elements = Arg::i32(int32_t(numElements));
  launch(stream, *kernels_[Bounds], blocks_,
         {Arg::buffer(k[sorted], DType::I32, n),
          Arg::buffer(starts.data(), DType::I32, size_t(numElements)),
          Arg::buffer(ends.data(), DType::I32, size_t(numElements)), count, elements});
  launch(stream, *kernels_[accumulate ? SumAcc : Sum], (numElements + kBlockE - 1) / kBlockE,
         {Arg::buffer(v[sorted], DType::F32, n),
          Arg::buffer(starts.data(), DType::I32, size_t(numElements)),
          Arg::buffer(ends.data(), DType::I32, size_t(numElements)),
          Arg::buffer(out, DType::F32, size_t(numElements)), elements});
  bounds_.push_back(std::move(starts));
  bounds_.push_back(std::move(ends));
  if (count_ > 0)
    failIfAnyOutside(stream, k[sorted] + (count_ - 1), numElements, outsideError);
}

void SumByKey::failIfAnyOutside(runtime::Stream *stream, const int32_t *lastSortedKey,
                                int64_t numElements, const std::string &outsideError) {
  // The keys are sorted, so any "outside" key (the largest) is the last.
  if (backend_ != runtime::Backend::Cuda)
    return onHost(stream, [=] { failIfOutside(*lastSortedKey, numElements, outsideError); });
  // Device memory: copy the key to the host in stream order and wait for
  // it here, since a CUDA stream runs submitted host work when it is
  // enqueued, not when the stream reaches it.
  std::unique_ptr<runtime::Stream> own;
  if (!stream)
    own = runtime::createStream(backend_, "sum-by-key check");
  runtime::Stream &s = stream ? *stream : *own;
  int32_t last = 0;
  runtime::copyAsync(s, &last, lastSortedKey, sizeof(int32_t));
  s.record()->synchronize(std::chrono::minutes(10), "sum by key: the outside-key check");
  failIfOutside(last, numElements, outsideError);
}

} // namespace loom::ops
