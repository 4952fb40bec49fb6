// Cost rules and arithmetic of the emulator's counters (emu/Counters.h).
#include "loom/device/emu/Counters.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <set>

namespace loom::device::emu {

namespace {
// Distinct 4-byte words per bank of a set of byte ranges; returns the most.
template <class Ranges>
unsigned max_words_per_bank(const Ranges& ranges) {
  std::set<uintptr_t> words;
  for (const auto& [a, n] : ranges)
    for (uintptr_t w = a / 4; w <= (a + n - 1) / 4; ++w) words.insert(w);
  unsigned per_bank[32] = {};
  unsigned most = 0;
  for (uintptr_t w : words) most = std::max(most, ++per_bank[w % 32]);
  return most;
}
} // namespace

unsigned shared_wavefronts(const uintptr_t addr[32], const uint32_t bytes[32], uint32_t active) {
  std::vector<std::pair<uintptr_t, uint32_t>> ranges;
  for (unsigned l = 0; l < 32; ++l)
    if ((active >> l & 1) && bytes[l]) ranges.push_back({addr[l], bytes[l]});
  return ranges.empty() ? 0 : max_words_per_bank(ranges);
}

unsigned global_sectors(const uintptr_t addr[32], const uint32_t bytes[32], uint32_t active) {
  std::set<uintptr_t> sectors;
  for (unsigned l = 0; l < 32; ++l)
    if ((active >> l & 1) && bytes[l])
      for (uintptr_t s = addr[l] / 32; s <= (addr[l] + bytes[l] - 1) / 32; ++s) sectors.insert(s);
  return (unsigned)sectors.size();
}

unsigned ldmatrix_wavefronts(const uintptr_t rows[], unsigned num) {
  unsigned total = 0;
  for (unsigned j = 0; j < num; ++j) {
    std::pair<uintptr_t, uint32_t> phase[8];
    for (unsigned r = 0; r < 8; ++r) phase[r] = {rows[8 * j + r], 16};
    total += max_words_per_bank(phase);
  }
  return total;
}

uint64_t CounterSet::mma_total() const {
  uint64_t n = 0;
  for (const auto& [name, count] : mma) n += count;
  return n;
}

CounterSet& CounterSet::operator+=(const CounterSet& o) {
  for (const auto& [name, count] : o.mma) mma[name] += count;
  ldmatrix += o.ldmatrix, ldmatrix_wavefronts += o.ldmatrix_wavefronts;
  shared_loads += o.shared_loads, shared_load_wavefronts += o.shared_load_wavefronts;
  shared_stores += o.shared_stores, shared_store_wavefronts += o.shared_store_wavefronts;
  cp_async_chunks += o.cp_async_chunks, cp_async_bytes += o.cp_async_bytes;
  cp_async_requests += o.cp_async_requests, cp_async_sectors += o.cp_async_sectors;
  global_loads += o.global_loads, global_load_sectors += o.global_load_sectors;
  global_stores += o.global_stores, global_store_sectors += o.global_store_sectors;
  barriers += o.barriers, shuffles += o.shuffles, ex2 += o.ex2;
  return *this;
}

Counters& Counters::operator+=(const Counters& o) {
  blocks += o.blocks;
  total += o.total;
  for (const LoopCounters& l : o.loops) {
    auto it = std::lower_bound(loops.begin(), loops.end(), l.id,
                               [](const LoopCounters& a, uint32_t id) { return a.id < id; });
    if (it == loops.end() || it->id != l.id) it = loops.insert(it, LoopCounters{l.id, 0, {}});
    it->iterations += l.iterations;
    it->counts += l.counts;
  }
  return *this;
}

namespace {
void row(std::string& out, const char* name, uint64_t n, double per_cta, double per_iter) {
  char buf[160];
  if (per_iter >= 0)
    std::snprintf(buf, sizeof buf, "  %-26s %14llu %14.1f %14.1f\n", name,
                  (unsigned long long)n, per_cta, per_iter);
  else
    std::snprintf(buf, sizeof buf, "  %-26s %14llu %14.1f\n", name, (unsigned long long)n,
                  per_cta);
  out += buf;
}

void table(std::string& out, const CounterSet& c, uint64_t blocks, uint64_t iterations) {
  const double b = blocks ? (double)blocks : 1.0;
  auto add = [&](const char* name, uint64_t n) {
    row(out, name, n, (double)n / b, iterations ? (double)n / (double)iterations : -1.0);
  };
  for (const auto& [name, n] : c.mma) add(name.c_str(), n);
  add("ldmatrix", c.ldmatrix);
  add("  wavefronts", c.ldmatrix_wavefronts);
  add("ld.shared", c.shared_loads);
  add("  wavefronts", c.shared_load_wavefronts);
  add("st.shared", c.shared_stores);
  add("  wavefronts", c.shared_store_wavefronts);
  add("cp.async chunks", c.cp_async_chunks);
  add("  bytes", c.cp_async_bytes);
  add("  requests", c.cp_async_requests);
  add("  sectors", c.cp_async_sectors);
  add("ld.global", c.global_loads);
  add("  sectors", c.global_load_sectors);
  add("st.global", c.global_stores);
  add("  sectors", c.global_store_sectors);
  add("bar.sync (per warp)", c.barriers);
  add("shfl.sync", c.shuffles);
  add("ex2.approx", c.ex2);
}
} // namespace

std::string Counters::to_string() const {
  std::string out = "emulator counters (exact, emulated, not run on hardware), " +
                    std::to_string(blocks) + " block(s); warp instructions summed over warps\n";
  char head[160];
  std::snprintf(head, sizeof head, "  %-26s %14s %14s\n", "launch", "total", "per CTA");
  out += head;
  table(out, total, blocks, 0);
  for (const LoopCounters& l : loops) {
    std::snprintf(head, sizeof head, "  %-26s %14s %14s %14s\n",
                  ("loop " + std::to_string(l.id) + ", " + std::to_string(l.iterations) +
                   " iter.").c_str(),
                  "total", "per CTA", "per CTA-iter.");
    out += head;
    // Iterations sum over blocks: counts / iterations is per CTA-iteration.
    table(out, l.counts, blocks, l.iterations);
  }
  return out;
}

} // namespace loom::device::emu
