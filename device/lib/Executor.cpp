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
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

namespace loom::device::emu {

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
std::atomic<unsigned> race_check_launches{0};

namespace {

enum class State { Runnable, AtBarrier, AtCollective, Done };

struct Fiber {
  ucontext_t ctx;
  dim3 tid;
  unsigned linear = 0;
  State state = State::Runnable;
  const char* waiting_on = nullptr; // instruction name while waiting
  std::source_location site;        // where it waits
  CpAsyncState cp;
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
  // barrier 0
  unsigned at_barrier = 0;
  std::source_location barrier_site;
  // race detection (shadow is null when off)
  ShadowByte* shadow = nullptr;
  uint32_t epoch = 0;
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

void yield_to_scheduler() {
  Fiber* f = t_fiber;
  swapcontext(&f->ctx, &t_block->sched);
}

void complete(Pending p) {
  Block& b = *t_block;
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

// Called on a fiber that is about to finish: it must not leave others stuck.
void thread_exit() {
  Block& b = *t_block;
  Fiber& f = *t_fiber;
  ++b.done;
  if (b.at_barrier > 0)
    fail("barrier divergence: this thread exited while " + std::to_string(b.at_barrier) +
         " thread(s) wait at bar.sync 0 (" + str(b.barrier_site) +
         "); every thread of the block must reach the same barrier" + describe_waits(b));
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
  Worker(const LaunchConfig& cfg, const std::function<void()>& body, bool detect_races)
      : cfg_(cfg), body_(body) {
    smem_size_ = std::max<std::size_t>(cfg.shared_bytes, 1);
    smem_.reset(static_cast<unsigned char*>(::operator new(smem_size_, std::align_val_t(128))));
    if (detect_races) shadow_.resize(smem_size_);
  }

  void run(unsigned long long index) {
    const dim3& g = cfg_.grid;
    Block b;
    b.cfg = &cfg_;
    b.body = &body_;
    b.idx = dim3((unsigned)(index % g.x), (unsigned)(index / g.x % g.y),
                 (unsigned)(index / ((unsigned long long)g.x * g.y)));
    b.smem = smem_.get();
    if (!shadow_.empty()) {
      // A fresh epoch per block; restart (clearing the shadow) long before
      // the counter could wrap.
      if (epoch_ > std::numeric_limits<uint32_t>::max() / 2) {
        std::fill(shadow_.begin(), shadow_.end(), ShadowByte{});
        epoch_ = 0;
      }
      b.shadow = shadow_.data();
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

void launch(const LaunchConfig& config, const std::function<void()>& body) {
  validate(config);
  const unsigned long long blocks = config.grid.volume();
  unsigned workers = config.workers;
  if (workers == 0)
    workers = (unsigned)std::min<unsigned long long>(
        {blocks, 8ull, std::max(1u, std::thread::hardware_concurrency())});

  const char* env = std::getenv("LOOM_EMU_RACE_CHECK");
  const bool detect = config.detect_races || (env && *env && std::strcmp(env, "0") != 0);
  struct RaceCheckCount {
    bool on;
    explicit RaceCheckCount(bool on) : on(on) { if (on) race_check_launches.fetch_add(1); }
    ~RaceCheckCount() { if (on) race_check_launches.fetch_sub(1); }
  } race_check_count(detect);

  std::atomic<unsigned long long> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::exception_ptr first_error;
  auto work = [&] {
    try {
      Worker w(config, body, detect);
      while (!stop.load(std::memory_order_relaxed)) {
        const unsigned long long i = next.fetch_add(1);
        if (i >= blocks) break;
        w.run(i);
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
}

// ---- hooks for the emulated primitives ------------------------------------------

void block_barrier(std::source_location site) {
  Block& b = block();
  Fiber& f = *t_fiber;
  if (b.done > 0) {
    std::vector<unsigned> gone;
    for (const Fiber& o : b.fibers)
      if (o.state == State::Done) gone.push_back(o.linear);
    fail("barrier divergence at bar.sync 0 (" + str(site) + "): threads " +
         thread_list(b, gone) + " have already exited; every thread of the block must " +
         "reach the same barrier");
  }
  if (b.at_barrier == 0) {
    b.barrier_site = site;
  } else if (!same_site(site, b.barrier_site)) {
    fail("barrier divergence: this thread reached bar.sync 0 at " + str(site) +
         " while other threads wait at bar.sync 0 at " + str(b.barrier_site) +
         describe_waits(b));
  }
  if (++b.at_barrier == b.fibers.size()) {
    b.at_barrier = 0;
    ++b.epoch; // accesses before the barrier are ordered before those after it
    for (Fiber& o : b.fibers)
      if (o.state == State::AtBarrier) o.state = State::Runnable;
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
      if (q.op.compute != op.compute || !same_site(q.op.site, op.site))
        fail(std::string("warp divergence: this lane reached ") + op.name + " at " +
             str(op.site) + " while lanes " + lane_mask_list(b, w, q.arrived) + " wait at " +
             q.op.name + " at " + str(q.op.site));
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

CpAsyncState& cp_async_state() {
  block();
  return t_fiber->cp;
}

} // namespace loom::device::emu
