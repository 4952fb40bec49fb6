// Fiber-based CTA executor for emulated CUDA kernels (see emu/Executor.h).
//
// Each block runs on one OS thread: a scheduler context and one ucontext fiber
// per CUDA thread. A fiber runs until it waits at a barrier or a warp
// collective (or finishes), then swaps back to the scheduler, which resumes
// the next runnable fiber. Whoever completes a barrier or collective releases
// the waiters, so progress never depends on scheduling order; when nothing is
// runnable and threads remain, the block is deadlocked and the waits are
// reported.
#include "loom/device/emu/Executor.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "GlobalRaces.h"

namespace loom::device::emu {

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
std::atomic<unsigned> instrumented_launches{0};

namespace {

enum class State { Runnable, AtBarrier, AtCollective, Done };

// A cp.async of one thread: the source bytes read at issue, zero-filled.
struct CpAsyncCopy {
  unsigned char* dst;
  unsigned char data[16];
};

// What the counters record of one lane's access, matched across the lanes
// of its warp by key (see emu/Counters.h).
enum class Access : uint8_t { SharedLoad, SharedStore, GlobalLoad, GlobalStore, CpAsync, Ex2 };
struct AccessKey {
  uint32_t op = 0, occurrence = 0; // kernel-level op instance; occurrence at the site in it
  const char* file = nullptr;
  uint32_t line = 0, column = 0;
  Access kind{};
  bool operator==(const AccessKey&) const = default;
};
struct AccessKeyHash {
  std::size_t operator()(const AccessKey& k) const {
    std::size_t h = std::hash<const void*>()(k.file);
    for (uint64_t x : {(uint64_t)k.op << 32 | k.occurrence, (uint64_t)k.line << 32 | k.column,
                       (uint64_t)k.kind})
      h = (h ^ std::hash<uint64_t>()(x)) * 0x9e3779b97f4a7c15ull;
    return h;
  }
};
struct AccessRecord {
  AccessKey key;
  uintptr_t addr;
  uint32_t bytes;
  bool active;
  uint16_t loops; // interned stack of marked loops (Counting::contexts)
};

struct Fiber {
  ucontext_t ctx;
  dim3 tid;
  unsigned linear = 0;
  State state = State::Runnable;
  const char* waiting_on = nullptr; // instruction name while waiting
  std::source_location site;        // where it waits
  uint32_t kernel_site = 0;         // LOOM_SITE of the op it executes
  std::vector<CpAsyncCopy> uncommitted;
  std::vector<std::vector<CpAsyncCopy>> groups; // oldest first
  // counters
  uint32_t op = 0; // LOOM_SITE markers passed: the op instance
  std::unordered_map<AccessKey, uint32_t, AccessKeyHash> occurrences; // in this op
  std::vector<uint32_t> loop_stack;
  uint16_t loops = 0;
  std::vector<AccessRecord> log; // until the next barrier
};

// A warp collective that some lanes have reached and others not yet.
struct Pending {
  Collective op;
  uint32_t arrived = 0;
  void* args[32] = {};
};

struct Warp {
  uint32_t exists = 0; // lanes present (the last warp may be partial)
  uint32_t exited = 0;
  std::vector<Pending> pending; // usually at most one
};

// Race-detection shadow of one shared-memory byte. Epochs count completed
// barriers; they keep growing across the blocks a worker runs, so entries left
// by an earlier block are simply old (no clearing between blocks).
constexpr uint16_t kNoThread = 0xffff;
struct ShadowByte {
  uint32_t write_epoch = 0, read_epoch = 0;
  uint16_t writer = kNoThread;
  uint16_t reader = kNoThread, reader2 = kNoThread; // two distinct readers in read_epoch
  uint16_t pending = kNoThread; // issuer of a cp.async not yet retired by its wait
};

// A worker's counts: its blocks' totals and loops, and the interned loop
// stacks that records name (context 0: outside every marked loop).
struct Counting {
  Counters counts;
  std::map<uint32_t, LoopCounters> loops;
  std::vector<std::vector<uint32_t>> contexts{{}};
  std::map<std::vector<uint32_t>, uint16_t> context_ids{{{}, 0}};

  uint16_t intern(const std::vector<uint32_t>& stack) {
    auto [it, fresh] = context_ids.try_emplace(stack, (uint16_t)contexts.size());
    if (fresh) {
      if (contexts.size() >= 0xffff) throw EmuError("loom emu: too many loop nests to count");
      contexts.push_back(stack);
    }
    return it->second;
  }
  // Applies f to the launch total and to every loop of context `ctx`.
  template <class F>
  void add(uint16_t ctx, F&& f) {
    f(counts.total);
    for (uint32_t id : contexts[ctx]) f(loops[id].counts);
  }
};

// A fiber stack with an inaccessible guard page below it, so that an overflow
// faults instead of silently corrupting a neighbour.
class Stack {
public:
  explicit Stack(std::size_t bytes) {
    page_ = (std::size_t)sysconf(_SC_PAGESIZE);
    size_ = (bytes + page_ - 1) / page_ * page_ + page_;
    void* p = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw EmuError("loom emu: cannot allocate a fiber stack");
    mprotect(p, page_, PROT_NONE);
    base_ = static_cast<char*>(p);
  }
  ~Stack() { munmap(base_, size_); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  void* usable() const { return base_ + page_; }
  std::size_t usable_size() const { return size_ - page_; }

private:
  char* base_;
  std::size_t size_, page_;
};

struct Block {
  const LaunchConfig* cfg;
  const std::function<void()>* body;
  dim3 idx;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  unsigned char* smem = nullptr;
  ucontext_t sched;
  unsigned done = 0;
  unsigned long long linear = 0; // block index in the grid
  // barrier 0
  unsigned at_barrier = 0;
  std::source_location barrier_site;
  uint32_t barrier_kernel_site = 0;
  // race detection (shadow is null when off)
  ShadowByte* shadow = nullptr;
  GlobalRaces* global = nullptr;
  uint32_t epoch = 0;
  Counting* counting = nullptr; // null unless counting
  std::exception_ptr error;
};

thread_local Block* t_block = nullptr;
thread_local Fiber* t_fiber = nullptr;

std::string str(const dim3& d) {
  std::ostringstream os;
  os << '(' << d.x << ',' << d.y << ',' << d.z << ')';
  return os.str();
}

std::string str(const std::source_location& s) {
  return std::string(s.file_name()) + ":" + std::to_string(s.line());
}

// A call site with the kernel-level op (LOOM_SITE) it was reached from.
std::string str(const std::source_location& s, uint32_t kernel_site) {
  return str(s) + (kernel_site ? " in kernel op " + std::to_string(kernel_site) : "");
}

bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         std::strcmp(a.file_name(), b.file_name()) == 0;
}

dim3 thread_of(const Block& b, unsigned linear) {
  const dim3& bd = b.cfg->block;
  return dim3(linear % bd.x, linear / bd.x % bd.y, linear / (bd.x * bd.y));
}

std::string block_prefix(const Block& b) {
  return "loom emu: kernel '" + b.cfg->kernel_name + "' block " + str(b.idx) + ": ";
}

Block& block() {
  if (!t_block) throw EmuError("loom emu: device primitive used outside an emulated launch");
  return *t_block;
}

// Threads listed as ranges of linear ids, e.g. "threads 0-63 (x 0..63)".
std::string thread_list(const Block& b, const std::vector<unsigned>& ids) {
  std::ostringstream os;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (i) os << ", ";
    os << str(thread_of(b, ids[i]));
    if (j > i) os << ".." << str(thread_of(b, ids[j]));
    i = j + 1;
  }
  return os.str();
}

// A summary of every thread's state, grouped by what it waits on.
std::string describe_waits(const Block& b) {
  std::vector<std::pair<std::string, std::vector<unsigned>>> groups;
  for (const Fiber& f : b.fibers) {
    std::string what;
    switch (f.state) {
    case State::Runnable: what = "runnable"; break;
    case State::Done: what = "exited"; break;
    default: what = std::string("waiting at ") + f.waiting_on + " (" + str(f.site) + ")";
    }
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == what; });
    if (it == groups.end()) groups.push_back({what, {f.linear}});
    else it->second.push_back(f.linear);
  }
  std::string out;
  for (const auto& [what, ids] : groups)
    out += "\n  threads " + thread_list(b, ids) + ": " + what;
  return out;
}

// ---- counters ------------------------------------------------------------------------

// Matches the logged accesses of each warp's lanes into warp requests and
// counts them; the logs are cleared. Called when every thread of the block
// is at a barrier or has exited, so no lane has a request half logged.
void flush_counts(Block& b) {
  Counting& c = *b.counting;
  struct Request {
    uintptr_t addr[32] = {};
    uint32_t bytes[32] = {};
    uint32_t active = 0;
    uint16_t loops = 0;
  };
  for (std::size_t w = 0; w < b.warps.size(); ++w) {
    std::unordered_map<AccessKey, Request, AccessKeyHash> requests;
    for (unsigned l = 0; l < 32 && w * 32 + l < b.fibers.size(); ++l) {
      Fiber& f = b.fibers[w * 32 + l];
      for (const AccessRecord& r : f.log) {
        Request& q = requests[r.key];
        if (!q.active) q.loops = r.loops;
        if (r.active) q.active |= 1u << l, q.addr[l] = r.addr, q.bytes[l] = r.bytes;
      }
      f.log.clear();
    }
    for (const auto& [key, q] : requests) {
      if (key.kind == Access::Ex2) {
        c.add(q.loops, [](CounterSet& s) { ++s.ex2; });
        continue;
      }
      if (!q.active) continue; // every lane predicated off: no memory request
      const bool shared = key.kind == Access::SharedLoad || key.kind == Access::SharedStore;
      const uint64_t cost = shared ? shared_wavefronts(q.addr, q.bytes, q.active)
                                   : global_sectors(q.addr, q.bytes, q.active);
      c.add(q.loops, [&](CounterSet& s) {
        switch (key.kind) {
        case Access::SharedLoad: ++s.shared_loads, s.shared_load_wavefronts += cost; break;
        case Access::SharedStore: ++s.shared_stores, s.shared_store_wavefronts += cost; break;
        case Access::GlobalLoad: ++s.global_loads, s.global_load_sectors += cost; break;
        case Access::GlobalStore: ++s.global_stores, s.global_store_sectors += cost; break;
        case Access::CpAsync: ++s.cp_async_requests, s.cp_async_sectors += cost; break;
        case Access::Ex2: break;
        }
      });
    }
  }
}

// Logs one access of the current thread at `site` for the counters.
void log_access(Block& b, Fiber& f, Access kind, const std::source_location& site,
                const void* p, std::size_t bytes, bool active) {
  AccessKey key{f.op, 0, site.file_name(), site.line(), site.column(), kind};
  key.occurrence = f.occurrences[key]++;
  f.log.push_back({key, reinterpret_cast<uintptr_t>(p), (uint32_t)bytes, active, f.loops});
  (void)b;
}

void yield_to_scheduler() {
  Fiber* f = t_fiber;
  swapcontext(&f->ctx, &t_block->sched);
}

void complete(Pending p) {
  Block& b = *t_block;
  if (b.counting) {
    const Collective& op = p.op;
    b.counting->add(t_fiber->loops, [&](CounterSet& s) {
      switch (op.kind) {
      case Collective::Kind::Mma: ++s.mma[op.name]; break;
      case Collective::Kind::Ldmatrix: ++s.ldmatrix; break;
      case Collective::Kind::Shfl: ++s.shuffles; break;
      case Collective::Kind::Other: break;
      }
    });
  }
  p.op.compute(p.args, p.arrived);
  Warp& w = b.warps[t_fiber->linear / 32];
  for (unsigned l = 0; l < 32; ++l)
    if (p.arrived >> l & 1) {
      Fiber& f = b.fibers[(&w - b.warps.data()) * 32 + l];
      if (&f != t_fiber) f.state = State::Runnable;
    }
}

uint32_t lanes_needed(const Warp& w, const Collective& op) {
  return op.aligned ? 0xffffffffu : (op.membermask & w.exists & ~w.exited);
}

std::string lane_mask_list(const Block& b, const Warp& w, uint32_t mask) {
  std::vector<unsigned> ids;
  const unsigned base = (unsigned)(&w - b.warps.data()) * 32;
  for (unsigned l = 0; l < 32; ++l)
    if (mask >> l & 1) ids.push_back(base + l);
  return thread_list(b, ids);
}

// Completes bar.sync 0: every thread that has not exited is there. Accesses
// before it are ordered before those after it.
void release_barrier(Block& b) {
  b.at_barrier = 0;
  ++b.epoch;
  if (b.counting) {
    flush_counts(b);
    uint64_t warps = 0;
    for (const Warp& w : b.warps) warps += (w.exists & ~w.exited) != 0;
    b.counting->add(t_fiber->loops, [&](CounterSet& s) { s.barriers += warps; });
  }
  for (Fiber& o : b.fibers)
    if (o.state == State::AtBarrier) o.state = State::Runnable;
}

void clear_pending_copies(Block& b, Fiber& f);

// Called on a fiber that is about to finish: it must not leave others stuck.
// As in PTX, barriers do not wait for exited threads: one that only this
// thread kept waiting completes now.
void thread_exit() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  ++b.done;
  clear_pending_copies(b, f);
  Warp& w = b.warps[f.linear / 32];
  w.exited |= 1u << (f.linear % 32);
  for (std::size_t i = 0; i < w.pending.size(); ++i) {
    Pending& p = w.pending[i];
    if (p.op.aligned)
      fail(std::string("warp divergence: this lane exited while lanes ") +
           lane_mask_list(b, w, p.arrived) + " wait at " + p.op.name + " (" + str(p.op.site) +
           "), which needs all 32 lanes");
    if (p.arrived == lanes_needed(w, p.op)) { // exited lanes are not waited for
      Pending done = p;
      w.pending.erase(w.pending.begin() + (std::ptrdiff_t)i);
      complete(done);
      --i;
    }
  }
  if (b.at_barrier > 0 && b.at_barrier == b.fibers.size() - b.done) release_barrier(b);
}

void fiber_main() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  try {
    (*b.body)();
    thread_exit();
  } catch (const EmuError&) {
    if (!b.error) b.error = std::current_exception();
  } catch (const std::exception& e) {
    if (!b.error)
      b.error = std::make_exception_ptr(EmuError(
          block_prefix(b) + "thread " + str(f.tid) + ": uncaught exception: " + e.what()));
  } catch (...) {
    if (!b.error)
      b.error = std::make_exception_ptr(
          EmuError(block_prefix(b) + "thread " + str(f.tid) + ": uncaught exception"));
  }
  f.state = State::Done;
  setcontext(&b.sched); // never resumed
}

// Runs blocks one after another on one OS thread, reusing stacks and shared
// memory between them.
class Worker {
public:
  Worker(const LaunchConfig& cfg, const std::function<void()>& body, GlobalRaces* global)
      : cfg_(cfg), body_(body), global_(global) {
    smem_size_ = std::max<std::size_t>(cfg.shared_bytes, 1);
    smem_.reset(static_cast<unsigned char*>(::operator new(smem_size_, std::align_val_t(128))));
    if (cfg.detect_races) shadow_.resize(smem_size_);
  }

  // The counts of the blocks this worker ran (loops ascending by id).
  Counters counts() const {
    Counters c = counting_.counts;
    for (const auto& [id, l] : counting_.loops) c.loops.push_back({id, l.iterations, l.counts});
    return c;
  }

  void run(unsigned long long index) {
    const dim3& g = cfg_.grid;
    Block b;
    b.cfg = &cfg_;
    b.body = &body_;
    b.idx = dim3((unsigned)(index % g.x), (unsigned)(index / g.x % g.y),
                 (unsigned)(index / ((unsigned long long)g.x * g.y)));
    b.smem = smem_.get();
    b.linear = index;
    b.global = global_;
    if (cfg_.counters) b.counting = &counting_;
    if (!shadow_.empty() || global_) {
      // A fresh epoch per block; restart (clearing the shadow) long before
      // the counter could wrap.
      if (epoch_ > std::numeric_limits<uint32_t>::max() / 2) {
        std::fill(shadow_.begin(), shadow_.end(), ShadowByte{});
        epoch_ = 0;
      }
      b.shadow = shadow_.empty() ? nullptr : shadow_.data();
      b.epoch = ++epoch_;
    }
    // Poison: all-ones bytes are NaN as f32, f16 and bf16, so reading shared
    // memory that nothing wrote (e.g. a cp.async never waited for) shows.
    std::memset(b.smem, 0xff, smem_size_);

    const unsigned n = (unsigned)cfg_.block.volume();
    while (stacks_.size() < n) stacks_.push_back(std::make_unique<Stack>(cfg_.stack_bytes));
    b.fibers.resize(n);
    b.warps.resize((n + 31) / 32);
    for (unsigned i = 0; i < n; ++i) {
      Fiber& f = b.fibers[i];
      f.linear = i;
      f.tid = thread_of(b, i);
      b.warps[i / 32].exists |= 1u << (i % 32);
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = stacks_[i]->usable();
      f.ctx.uc_stack.ss_size = stacks_[i]->usable_size();
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, fiber_main, 0);
    }

    t_block = &b;
    blockIdx = b.idx;
    blockDim = cfg_.block;
    gridDim = cfg_.grid;
    struct Reset {
      Block& b;
      uint32_t& epoch;
      ~Reset() { t_block = nullptr, t_fiber = nullptr, epoch = std::max(epoch, b.epoch); }
    } reset{b, epoch_};

    while (b.done < n && !b.error) {
      bool ran = false;
      for (Fiber& f : b.fibers) {
        if (f.state != State::Runnable) continue;
        ran = true;
        t_fiber = &f;
        threadIdx = f.tid;
        swapcontext(&b.sched, &f.ctx);
        if (b.error) break;
      }
      if (!ran && !b.error)
        throw EmuError(block_prefix(b) + "deadlock: no thread can make progress" +
                       describe_waits(b));
    }
    if (b.error) std::rethrow_exception(b.error);
    if (b.counting) {
      flush_counts(b);
      ++counting_.counts.blocks;
    }
  }

private:
  struct AlignedDelete {
    void operator()(unsigned char* p) const { ::operator delete(p, std::align_val_t(128)); }
  };
  const LaunchConfig& cfg_;
  const std::function<void()>& body_;
  std::vector<std::unique_ptr<Stack>> stacks_;
  std::unique_ptr<unsigned char, AlignedDelete> smem_;
  std::size_t smem_size_;
  std::vector<ShadowByte> shadow_; // empty unless detecting races
  GlobalRaces* global_;            // null unless detecting global races
  Counting counting_;
  uint32_t epoch_ = 0;
};

void validate(const LaunchConfig& c) {
  auto bad = [&](const std::string& what) {
    throw EmuError("loom emu: kernel '" + c.kernel_name + "': " + what);
  };
  if (c.grid.volume() == 0) bad("empty grid " + str(c.grid));
  if (c.block.volume() == 0 || c.block.volume() > 1024)
    bad("block " + str(c.block) + " must have 1..1024 threads");
  if (c.block.z > 64) bad("blockDim.z must be at most 64");
  if (c.grid.y > 65535 || c.grid.z > 65535) bad("gridDim.y and .z must be at most 65535");
}

} // namespace

// ---- launch ------------------------------------------------------------------

namespace {
bool env_flag(const char* name) {
  const char* env = std::getenv(name);
  return env && *env && std::strcmp(env, "0") != 0;
}

// The launch's options with the environment's overrides applied.
LaunchConfig resolve(const LaunchConfig& config, Counters* print_counts) {
  LaunchConfig c = config;
  c.detect_races = c.detect_races || env_flag("LOOM_EMU_RACE_CHECK");
  c.detect_global_races = c.detect_global_races || env_flag("LOOM_EMU_GLOBAL_RACE_CHECK");
  if (const char* land = std::getenv("LOOM_EMU_CP_ASYNC_LAND"); land && *land) {
    if (std::strcmp(land, "issue") == 0) c.cp_async_land = LaunchConfig::CpAsyncLand::AtIssue;
    else if (std::strcmp(land, "wait") == 0) c.cp_async_land = LaunchConfig::CpAsyncLand::AtWait;
    else
      throw EmuError(std::string("loom emu: LOOM_EMU_CP_ASYNC_LAND='") + land +
                     "' is neither 'issue' nor 'wait'");
  }
  if (!c.counters && env_flag("LOOM_EMU_COUNTERS")) c.counters = print_counts;
  return c;
}
} // namespace

void launch(const LaunchConfig& options, const std::function<void()>& body) {
  validate(options);
  Counters printed;
  const LaunchConfig config = resolve(options, &printed);
  const unsigned long long blocks = config.grid.volume();
  unsigned workers = config.workers;
  if (workers == 0)
    workers = (unsigned)std::min<unsigned long long>(
        {blocks, 8ull, std::max(1u, std::thread::hardware_concurrency())});

  const bool instrument = config.detect_races || config.detect_global_races || config.counters;
  struct InstrumentedCount {
    bool on;
    explicit InstrumentedCount(bool on) : on(on) { if (on) instrumented_launches.fetch_add(1); }
    ~InstrumentedCount() { if (on) instrumented_launches.fetch_sub(1); }
  } instrumented_count(instrument);
  std::unique_ptr<GlobalRaces> global;
  if (config.detect_global_races) global = std::make_unique<GlobalRaces>();
  Counters counts;

  std::atomic<unsigned long long> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::exception_ptr first_error;
  auto work = [&] {
    try {
      Worker w(config, body, global.get());
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned long long i = next.fetch_add(1);
        if (i >= blocks) break;
        w.run(i);
      }
      if (config.counters) {
        std::lock_guard<std::mutex> lock(mutex);
        counts += w.counts();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!first_error) first_error = std::current_exception();
      stop = true;
    }
  };
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < workers; ++i) threads.emplace_back(work);
    for (auto& t : threads) t.join();
  }
  if (first_error) std::rethrow_exception(first_error);
  if (config.counters) *config.counters = counts;
  if (config.counters == &printed)
    std::fprintf(stderr, "loom emu: kernel '%s' grid %s block %s:\n%s", config.kernel_name.c_str(),
                 str(config.grid).c_str(), str(config.block).c_str(), counts.to_string().c_str());
}

// ---- hooks for the emulated primitives ------------------------------------------

void block_barrier(std::source_location site) {
  Block& b = block();
  Fiber& f = *t_fiber;
  if (b.at_barrier == 0) {
    b.barrier_site = site;
    b.barrier_kernel_site = f.kernel_site;
  } else if (!same_site(site, b.barrier_site) || f.kernel_site != b.barrier_kernel_site) {
    fail("barrier divergence: this thread reached bar.sync 0 at " + str(site, f.kernel_site) +
         " while other threads wait at bar.sync 0 at " +
         str(b.barrier_site, b.barrier_kernel_site) + describe_waits(b));
  }
  // Exited threads are not waited for (PTX_FACTS §7).
  if (++b.at_barrier == b.fibers.size() - b.done) {
    release_barrier(b);
    return;
  }
  f.state = State::AtBarrier;
  f.waiting_on = "bar.sync 0";
  f.site = site;
  yield_to_scheduler();
}

void warp_collective(const Collective& op, void* args) {
  Block& b = block();
  Fiber& f = *t_fiber;
  Warp& w = b.warps[f.linear / 32];
  const unsigned lane = f.linear % 32;
  if (op.aligned && w.exists != 0xffffffffu)
    fail(std::string(op.name) + " (" + str(op.site) + ") needs all 32 lanes, but this warp " +
         "has only " + std::to_string(__builtin_popcount(w.exists)) +
         " threads (blockDim " + str(b.cfg->block) + ")");
  if (op.aligned && w.exited)
    fail(std::string(op.name) + " (" + str(op.site) + ") needs all 32 lanes, but lanes " +
         lane_mask_list(b, w, w.exited) + " have exited");

  Pending* p = nullptr;
  for (Pending& q : w.pending) {
    if (op.aligned || q.op.aligned) {
      // .aligned: every lane must execute this very instruction.
      if (q.op.compute != op.compute || !same_site(q.op.site, op.site) ||
          q.op.kernel_site != f.kernel_site)
        fail(std::string("warp divergence: this lane reached ") + op.name + " at " +
             str(op.site, f.kernel_site) + " while lanes " + lane_mask_list(b, w, q.arrived) +
             " wait at " + q.op.name + " at " + str(q.op.site, q.op.kernel_site));
      p = &q;
    } else if (q.op.membermask == op.membermask) {
      if (q.op.compute != op.compute)
        fail(std::string("lanes disagree on the shuffle: this lane executes ") + op.name +
             " while lanes " + lane_mask_list(b, w, q.arrived) + " execute " + q.op.name +
             " with the same membermask");
      p = &q;
    } else if (q.op.membermask & op.membermask & (1u << lane)) {
      fail(std::string(op.name) + ": lanes disagree on membermask");
    }
    if (p) break;
  }
  if (!p) {
    w.pending.push_back(Pending{op});
    p = &w.pending.back();
    p->op.kernel_site = f.kernel_site;
  }
  p->arrived |= 1u << lane;
  p->args[lane] = args;
  if (p->arrived == lanes_needed(w, p->op)) {
    Pending done = *p;
    w.pending.erase(w.pending.begin() + (p - w.pending.data()));
    complete(done);
    return;
  }
  f.state = State::AtCollective;
  f.waiting_on = op.name;
  f.site = op.site;
  yield_to_scheduler();
}

unsigned linear_thread_id() {
  block();
  return t_fiber->linear;
}

unsigned current_lane_id() { return linear_thread_id() % 32; }

unsigned char* shared_base() { return block().smem; }

std::size_t shared_size() { return block().cfg->shared_bytes; }

bool is_shared(const void* p, std::size_t bytes) {
  const Block& b = block();
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= b.smem && bytes <= b.cfg->shared_bytes &&
         (std::size_t)(c - b.smem) <= b.cfg->shared_bytes - bytes;
}

void check_shared(const void* p, std::size_t bytes, const char* what) {
  if (is_shared(p, bytes)) return;
  const Block& b = *t_block;
  std::ostringstream os;
  os << what << ": bytes [" << p << ", +" << bytes << ") are outside the block's shared memory ["
     << static_cast<const void*>(b.smem) << ", +" << b.cfg->shared_bytes << ")";
  const auto off = static_cast<const unsigned char*>(p) - b.smem;
  if (off >= 0 && (std::size_t)off < b.cfg->shared_bytes + 4096)
    os << " (offset " << off << ")";
  fail(os.str());
}

void check_global(const void* p, std::size_t bytes, const char* what) {
  const Block& b = block();
  const auto& buffers = b.cfg->global_buffers;
  if (buffers.empty()) return;
  const auto* c = static_cast<const unsigned char*>(p);
  for (const GlobalBuffer& g : buffers) {
    const auto* base = static_cast<const unsigned char*>(g.base);
    if (c >= base && bytes <= g.bytes && (std::size_t)(c - base) <= g.bytes - bytes) return;
  }
  std::ostringstream os;
  os << what << ": " << bytes << " bytes at " << p
     << " are outside every buffer passed to the kernel";
  for (const GlobalBuffer& g : buffers) {
    const auto off = c - static_cast<const unsigned char*>(g.base);
    os << "; " << g.name << ": " << g.bytes << " bytes";
    if (off >= -(std::ptrdiff_t)(1 << 20) && off < (std::ptrdiff_t)g.bytes + (1 << 20))
      os << " (access at byte offset " << off << ")";
  }
  fail(os.str());
}

namespace {
// Records a global access of the current thread with the race detector and
// reports (fail) a race.
void global_access(GlobalRaces& races, Block& b, const void* p, std::size_t bytes, bool write,
                   const char* what) {
  const Fiber& f = *t_fiber;
  const auto c = races.access(reinterpret_cast<uintptr_t>(p), bytes, write, b.linear, b.epoch,
                              (uint16_t)f.linear);
  if (!c.found) return;
  const dim3& g = b.cfg->grid;
  const dim3 other(unsigned(c.block % g.x), unsigned(c.block / g.x % g.y),
                   unsigned(c.block / ((unsigned long long)g.x * g.y)));
  std::ostringstream os;
  os << "global-memory race: thread " << str(f.tid) << " of block " << str(b.idx)
     << (write ? " writes" : " reads") << " the byte at " << reinterpret_cast<const void*>(c.addr);
  for (const GlobalBuffer& buf : b.cfg->global_buffers) {
    const auto* base = static_cast<const unsigned char*>(buf.base);
    const auto* at = reinterpret_cast<const unsigned char*>(c.addr);
    if (at >= base && at < base + buf.bytes) os << " (" << buf.name << ", byte offset " << at - base << ")";
  }
  os << ", at " << what << ", " << (c.other_wrote ? "written" : "read") << " by ";
  if (c.thread != GlobalRaces::kNoThread) os << "thread " << str(thread_of(b, c.thread)) << " of ";
  os << "block " << str(other);
  if (c.block != b.linear)
    os << " in the same launch (" << (c.other_wrote ? "write-" : "read-")
       << (write ? "write" : "read") << " race; the blocks of a launch are not ordered)";
  else
    os << " since the last barrier (" << (c.other_wrote ? "write-" : "read-")
       << (write ? "write" : "read") << " race; a bar_sync() between the two orders them)";
  fail(os.str());
}
} // namespace

void note_shared_access(const void* p, std::size_t bytes, bool write, int lane,
                        const char* what) {
  Block& b = block();
  if (!b.shadow || bytes == 0) return;
  const char* access = what ? what : write ? "shared-memory store" : "shared-memory load";
  if (!is_shared(p, bytes)) check_shared(p, bytes, access);
  const unsigned self = lane < 0 ? t_fiber->linear : (t_fiber->linear & ~31u) + (unsigned)lane;
  const std::size_t off = (std::size_t)(static_cast<const unsigned char*>(p) - b.smem);
  ShadowByte* sh = b.shadow + off;
  const uint32_t e = b.epoch;
  for (std::size_t i = 0; i < bytes; ++i) {
    const ShadowByte& s = sh[i];
    if (s.pending != kNoThread) {
      // A cp.async may land at any moment until its issuer's wait_group.
      std::ostringstream os;
      os << "shared-memory race: thread " << str(thread_of(b, self))
         << (write ? " writes" : " reads") << " bytes [offset " << off << ", +" << bytes << ")";
      if (what) os << " (at " << what << ")";
      if (s.pending == self)
        os << " that its own cp.async has not landed yet (missing cp.async.wait_group "
              "before the access)";
      else
        os << " that a cp.async issued by thread " << str(thread_of(b, s.pending))
           << " may still be writing (the copy may land at any moment until that thread's "
              "cp.async.wait_group; a wait_group, then a bar_sync, orders them)";
      fail(os.str());
    }
    unsigned other = kNoThread;
    const char* other_did = nullptr;
    if (s.write_epoch == e && s.writer != self) {
      other = s.writer;
      other_did = "written";
    } else if (write && s.read_epoch == e) {
      other = s.reader != self ? s.reader : s.reader2;
      other_did = "read";
    }
    if (other == kNoThread) continue;
    std::ostringstream os;
    os << "shared-memory race: thread " << str(thread_of(b, self))
       << (write ? " writes" : " reads") << " bytes [offset " << off << ", +" << bytes << ") "
       << other_did << " by thread " << str(thread_of(b, other))
       << " since the last barrier (" << (other_did[0] == 'w' ? "write-" : "read-")
       << (write ? "write" : "read") << " race";
    if (what) os << ", at " << what;
    os << "; a bar_sync() between the two accesses orders them)";
    fail(os.str());
  }
  for (std::size_t i = 0; i < bytes; ++i) {
    ShadowByte& s = sh[i];
    if (write) {
      s.write_epoch = e;
      s.writer = (uint16_t)self;
    } else if (s.read_epoch != e) {
      s.read_epoch = e;
      s.reader = (uint16_t)self;
      s.reader2 = kNoThread;
    } else if (s.reader != self && s.reader2 == kNoThread) {
      s.reader2 = (uint16_t)self;
    }
  }
}

std::string describe_lane(unsigned lane) {
  const Block& b = block();
  return "thread " + str(thread_of(b, (t_fiber->linear & ~31u) + lane));
}

void fail(const std::string& message) {
  if (!t_block) throw EmuError("loom emu: " + message);
  throw EmuError(block_prefix(*t_block) + "thread " + str(t_fiber->tid) + ": " + message);
}

// ---- cp.async ---------------------------------------------------------------------

namespace {
void mark_pending(Block& b, const unsigned char* dst, uint16_t issuer) {
  ShadowByte* sh = b.shadow + (dst - b.smem);
  for (int i = 0; i < 16; ++i) sh[i].pending = issuer;
}

// A thread that exits leaves no pending mark for the next block on the
// worker (its copies never land).
void clear_pending_copies(Block& b, Fiber& f) {
  if (b.shadow) {
    for (const CpAsyncCopy& c : f.uncommitted) mark_pending(b, c.dst, kNoThread);
    for (const auto& g : f.groups)
      for (const CpAsyncCopy& c : g) mark_pending(b, c.dst, kNoThread);
  }
  f.uncommitted.clear();
  f.groups.clear();
}
} // namespace

void cp_async_issue(void* smem, const void* gmem, int src_bytes) {
  Block& b = block();
  Fiber& f = *t_fiber;
  if (reinterpret_cast<std::uintptr_t>(smem) % 16 || reinterpret_cast<std::uintptr_t>(gmem) % 16)
    fail("cp.async: shared and global addresses must be 16-byte aligned");
  if (src_bytes < 0 || src_bytes > 16)
    fail("cp.async: src-size " + std::to_string(src_bytes) + " is outside [0, 16]");
  check_shared(smem, 16, "cp.async destination");
  if (src_bytes > 0) check_global(gmem, (std::size_t)src_bytes, "cp.async source");
  CpAsyncCopy copy{static_cast<unsigned char*>(smem), {}};
  if (src_bytes > 0) std::memcpy(copy.data, gmem, (std::size_t)src_bytes);
  if (b.global && src_bytes > 0)
    global_access(*b.global, b, gmem, (std::size_t)src_bytes, false, "cp.async source");
  if (b.shadow) {
    // The copy may land now: a write, checked against this epoch's accesses
    // and other pending copies; then pending until the wait.
    note_shared_access(smem, 16, true, -1, "cp.async");
    mark_pending(b, copy.dst, (uint16_t)f.linear);
  }
  if (b.counting) {
    static const std::source_location site = std::source_location::current();
    log_access(b, f, Access::CpAsync, site, gmem, (std::size_t)src_bytes, true);
    b.counting->add(f.loops, [&](CounterSet& s) {
      ++s.cp_async_chunks;
      s.cp_async_bytes += (uint64_t)src_bytes;
    });
  }
  if (b.cfg->cp_async_land == LaunchConfig::CpAsyncLand::AtIssue)
    std::memcpy(copy.dst, copy.data, 16);
  f.uncommitted.push_back(copy);
}

void cp_async_idle() {
  Block& b = block();
  if (!b.counting) return;
  static const std::source_location site = std::source_location::current();
  log_access(b, *t_fiber, Access::CpAsync, site, nullptr, 0, false);
}

void cp_async_commit_group() {
  Fiber& f = (block(), *t_fiber);
  f.groups.push_back(std::move(f.uncommitted)); // an empty group is allowed
  f.uncommitted.clear();
}

void cp_async_wait_groups(int pending) {
  Block& b = block();
  Fiber& f = *t_fiber;
  const std::size_t retire =
      f.groups.size() > (std::size_t)pending ? f.groups.size() - (std::size_t)pending : 0;
  const bool at_wait = b.cfg->cp_async_land == LaunchConfig::CpAsyncLand::AtWait;
  for (std::size_t i = 0; i < retire; ++i)
    for (const CpAsyncCopy& c : f.groups[i]) {
      if (b.shadow) {
        // Landed by now: a write by the issuer at the wait, no longer pending.
        mark_pending(b, c.dst, kNoThread);
        note_shared_access(c.dst, 16, true, -1, "cp.async landing at wait_group");
      }
      if (at_wait) std::memcpy(c.dst, c.data, 16);
    }
  f.groups.erase(f.groups.begin(), f.groups.begin() + (std::ptrdiff_t)retire);
}

// ---- markers, instrumented accesses ---------------------------------------------------

void set_kernel_site(uint32_t id) {
  Block& b = block();
  Fiber& f = *t_fiber;
  f.kernel_site = id;
  if (b.counting) {
    ++f.op;
    f.occurrences.clear();
  }
}

void loop_iteration(uint32_t id) {
  Block& b = block();
  if (!b.counting) return;
  Fiber& f = *t_fiber;
  if (f.loop_stack.empty() || f.loop_stack.back() != id) {
    f.loop_stack.push_back(id);
    f.loops = b.counting->intern(f.loop_stack);
  }
  if (f.linear == 0) ++b.counting->loops[id].iterations;
}

void loop_end(uint32_t id) {
  Block& b = block();
  if (!b.counting) return;
  Fiber& f = *t_fiber;
  if (!f.loop_stack.empty() && f.loop_stack.back() == id) {
    f.loop_stack.pop_back();
    f.loops = b.counting->intern(f.loop_stack);
  }
}

void shared_request(const void* p, std::size_t bytes, bool write, std::source_location site) {
  Block& b = block();
  if (b.shadow) note_shared_access(p, bytes, write);
  if (b.counting)
    log_access(b, *t_fiber, write ? Access::SharedStore : Access::SharedLoad, site, p, bytes,
               true);
}

void global_request(const void* p, std::size_t bytes, bool write, bool active, const char* what,
                    std::source_location site) {
  Block& b = block();
  if (active) check_global(p, bytes, what);
  if (!instrumented()) return;
  if (active && b.global) global_access(*b.global, b, p, bytes, write, what);
  if (b.counting)
    log_access(b, *t_fiber, write ? Access::GlobalStore : Access::GlobalLoad, site, p, bytes,
               active);
}

void count_ex2(std::source_location site) {
  Block& b = block();
  if (b.counting) log_access(b, *t_fiber, Access::Ex2, site, nullptr, 0, true);
}

void count_ldmatrix_rows(const uintptr_t rows[], unsigned num) {
  Block& b = block();
  if (!b.counting) return;
  const uint64_t w = ldmatrix_wavefronts(rows, num);
  b.counting->add(t_fiber->loops, [&](CounterSet& s) { s.ldmatrix_wavefronts += w; });
}

} // namespace loom::device::emu
