// CPU executor for emulated CUDA kernels.
//
// A launch runs every block of the grid; blocks are spread over a few OS
// worker threads, and the threads of one block run as fibers on one worker.
// A fiber runs until it reaches a barrier or a warp-collective operation, so
// the emulated primitives can see all 32 lanes of a warp at once (each lane
// deposits its operands, the last lane to arrive computes for all).
//
// Device code reads threadIdx/blockIdx/blockDim/gridDim, which are OS-thread
// locals that the scheduler rewrites on every switch into a fiber: the fibers
// of a block never migrate between OS threads, so this is fiber-local.
//
// Errors (barrier divergence, deadlock, missing warp lanes, out-of-bounds
// shared-memory access by a primitive, any exception thrown by device code)
// abort the launch and are rethrown to the caller of launch() as EmuError.
//
// Optionally (LaunchConfig::detect_races, or LOOM_EMU_RACE_CHECK=1 in the
// environment) shared-memory accesses reported through note_shared_read /
// note_shared_write are checked for races: two threads touching the same byte
// between two barriers, at least one of them writing, or any access to the
// destination of a cp.async between its issue and its wait. With
// detect_global_races (LOOM_EMU_GLOBAL_RACE_CHECK=1) the tile layer's global
// accesses are checked the same way across the blocks of the launch, and
// with `counters` the launch counts its instructions (emu/Counters.h).
#pragma once

#include "loom/device/emu/Counters.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace loom::device {

class EmuError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace emu {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
  constexpr unsigned long long volume() const {
    return (unsigned long long)x * y * z;
  }
};

// Read by emulated device code (brought into the global namespace by emu.h).
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

/// A global-memory buffer a kernel may touch (bounds for check_global).
struct GlobalBuffer {
  const void* base = nullptr;
  std::size_t bytes = 0;
  std::string name;
};

struct LaunchConfig {
  std::string kernel_name = "kernel";
  dim3 grid, block;
  std::size_t shared_bytes = 0;   // dynamic shared memory per block
  unsigned workers = 0;           // OS threads; 0 = min(hardware, blocks, 8)
  std::size_t stack_bytes = 256 * 1024; // per fiber, plus a guard page
  /// When non-empty, every global access of the tile layer must fall inside
  /// one of these buffers (an out-of-bounds index is reported, not executed).
  std::vector<GlobalBuffer> global_buffers;
  /// Shared-memory race detection (also on when the environment has
  /// LOOM_EMU_RACE_CHECK set to anything but "" or "0"): every access that the
  /// emulated primitives and the tile layer report (note_shared_read/write)
  /// is checked against the other threads' accesses since the last barrier.
  bool detect_races = false;
  /// Global-memory race detection (also on with LOOM_EMU_GLOBAL_RACE_CHECK):
  /// a byte that one thread writes and another thread touches in the same
  /// launch is a race when the two are in different blocks, or in one block
  /// with no barrier between them. Costs a hash-map entry per touched byte.
  bool detect_global_races = false;
  /// When a cp.async reaches shared memory. On hardware it may land at any
  /// moment between its issue and the wait_group that retires it; value
  /// tests can run at either extreme. LOOM_EMU_CP_ASYNC_LAND=issue|wait in
  /// the environment overrides this.
  enum class CpAsyncLand { AtWait, AtIssue };
  CpAsyncLand cp_async_land = CpAsyncLand::AtWait;
  /// When non-null, the launch's counters are written here (emu/Counters.h).
  /// LOOM_EMU_COUNTERS=1 in the environment prints them to stderr.
  Counters* counters = nullptr;
};

// Runs body once per thread of every block. Throws EmuError on failure.
void launch(const LaunchConfig& config, const std::function<void()>& body);

// Runs kernel(args...) like kernel<<<grid, block, shared>>>(args...): the
// arguments are converted to the parameter types once, as a launch does.
template <class... Params, class... Args>
void launch(const LaunchConfig& config, void (*kernel)(Params...), Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count");
  const std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
  launch(config, [&] { std::apply(kernel, params); });
}

// ---- hooks used by the emulated primitives (emu.h) ---------------------------

// A warp-collective computation: args[l] is lane l's operand block (null for
// lanes that did not take part), lanes is the mask of lanes that took part.
using CollectiveFn = void (*)(void* const args[32], uint32_t lanes);

struct Collective {
  const char* name;        // instruction with qualifiers, e.g. "ldmatrix.x4"
  CollectiveFn compute;
  uint32_t membermask;
  bool aligned;            // .aligned: all 32 lanes, one instruction (call site)
  std::source_location site;
  enum class Kind : uint8_t { Other, Mma, Ldmatrix, Shfl } kind = Kind::Other; // counters
  uint32_t kernel_site = 0; // set by warp_collective: the caller's LOOM_SITE
};

// Blocks until every (non-exited, for non-aligned ops) lane of membermask has
// arrived with the same collective, then returns; args are read by compute.
void warp_collective(const Collective& op, void* args);

// bar.sync 0 across the whole block (its threads that have not exited);
// site and the thread's kernel site (LOOM_SITE) identify the instruction.
void block_barrier(std::source_location site);

// ---- markers of the generated code (tile/core.h LOOM_SITE, LOOM_LOOP_*) ------------

/// The kernel-level operation the thread executes next (a per-kernel id the
/// generated code passes): barriers and aligned collectives reached from
/// different ids are different instructions.
void set_kernel_site(uint32_t id);
/// The thread starts an iteration of marked loop `id` / leaves the loop.
void loop_iteration(uint32_t id);
void loop_end(uint32_t id);

unsigned linear_thread_id();   // x + y*bx + z*bx*by of the current fiber
unsigned current_lane_id();    // linear_thread_id() % 32

// Dynamic shared memory of the current block.
unsigned char* shared_base();
std::size_t shared_size();

// Whether [p, p + bytes) lies in the block's shared memory.
bool is_shared(const void* p, std::size_t bytes);
// Throws EmuError unless [p, p + bytes) lies in the block's shared memory.
void check_shared(const void* p, std::size_t bytes, const char* what);
/// Reports (fail) an access of `bytes` at `p` outside the launch's
/// global_buffers; no check when the launch registered none.
void check_global(const void* p, std::size_t bytes, const char* what);

// ---- shared-memory race detection -------------------------------------------------

/// Nonzero while some launch in the process runs with race detection or
/// counters: the instrumented accesses test only this before calling into
/// the executor.
extern std::atomic<unsigned> instrumented_launches;
inline bool instrumented() { return instrumented_launches.load(std::memory_order_relaxed) != 0; }

/// Records an access of `bytes` at `p` (in the block's shared memory) by the
/// current thread, or by lane `lane` of its warp when lane >= 0 (warp
/// collectives, which run on the last lane to arrive), and reports (fail) a
/// race with another thread's access since the last barrier. No-op when the
/// current launch does not detect races. `what` names the instruction.
void note_shared_access(const void* p, std::size_t bytes, bool write, int lane = -1,
                        const char* what = nullptr);

/// A thread's ld/st.shared at tile-library call site `site` (race detection
/// and counters).
void shared_request(const void* p, std::size_t bytes, bool write, std::source_location site);
inline void note_shared_read(const void* p, std::size_t bytes,
                             std::source_location site = std::source_location::current()) {
  if (instrumented()) shared_request(p, bytes, false, site);
}
inline void note_shared_write(const void* p, std::size_t bytes,
                              std::source_location site = std::source_location::current()) {
  if (instrumented()) shared_request(p, bytes, true, site);
}

/// A thread's ld/st.global at `site`, or, with active false, its lane's
/// share of one that a predicate turned off for it: the bounds check, and
/// with instrumentation global race detection and counters.
void global_request(const void* p, std::size_t bytes, bool write, bool active, const char* what,
                    std::source_location site);

/// One ex2.approx by the current thread at `site` (counters).
void count_ex2(std::source_location site);
inline void note_ex2(std::source_location site) {
  if (instrumented()) count_ex2(site);
}
/// Wavefronts of an ldmatrix whose rows are rows[0..8*num) (counters); call
/// from the collective's compute.
void count_ldmatrix_rows(const uintptr_t rows[], unsigned num);

// "thread (x,y,z)" for lane l of the current fiber's warp.
std::string describe_lane(unsigned lane);

// Throws EmuError prefixed with kernel, block and current thread.
[[noreturn]] void fail(const std::string& message);

// cp.async (PTX_FACTS §4) of the current thread: the source bytes are read
// at issue; the copy lands at issue or at the wait that retires its group
// (LaunchConfig::cp_async_land); the destination is a pending write of the
// issuer until that wait (race detection).
void cp_async_issue(void* smem, const void* gmem, int src_bytes);
void cp_async_commit_group();
void cp_async_wait_groups(int pending);
/// The current lane takes no part in a warp's cp.async (counters only).
void cp_async_idle();

} // namespace emu
} // namespace loom::device
