//===- Ring.cpp - loom ring: ring attention on .npy files -----------------===//
//
//   loom ring --world P --layout contiguous|zigzag|stripe
//             --transport inproc|mpi [--timeline FILE] [--timeout S] [--quiet]
//             [every option of loom attention]
//
// Reads whole-sequence inputs (rank 0 only), shards them over the ranks by
// the layout, runs ring attention (and the backward with the grad options),
// gathers the outputs in the original token order and writes them (rank 0),
// so the files compare directly with `loom attention`'s. With --transport
// mpi the command is started by `mpirun -np P`; with inproc the ranks are
// threads of this process. Inputs reach the ranks and outputs return through
// the communicator's allgather, the same way for both transports.
//
//===----------------------------------------------------------------------===//
#include "AttentionRequest.h"
#include "Commands.h"
#include "Progress.h"

#include "loom/ops/RingAttention.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace loom::cli {
namespace {

[[noreturn]] void invalid(const std::string &message) {
  throw Error(ErrorCode::InvalidArgument, "loom ring: " + message);
}

/// A flat byte buffer of int64 and float arrays, for the allgathers.
class Packer {
public:
  void ints(const std::vector<int64_t> &v) {
    put(v.data(), v.size(), sizeof(int64_t));
  }
  void floats(const std::vector<float> &v) {
    put(v.data(), v.size(), sizeof(float));
  }
  void doubles(const std::vector<double> &v) {
    put(v.data(), v.size(), sizeof(double));
  }
  std::vector<uint8_t> bytes;

private:
  void put(const void *data, size_t n, size_t es) {
    uint64_t count = n;
    append(&count, sizeof count);
    append(data, n * es);
  }
  void append(const void *p, size_t n) {
    auto *b = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
};

class Unpacker {
public:
  explicit Unpacker(const std::vector<uint8_t> &b) : bytes_(b) {}
  std::vector<int64_t> ints() { return get<int64_t>(); }
  std::vector<float> floats() { return get<float>(); }
  std::vector<double> doubles() { return get<double>(); }

private:
  template <typename T> std::vector<T> get() {
    uint64_t n;
    take(&n, sizeof n);
    std::vector<T> v(n);
    take(v.data(), n * sizeof(T));
    return v;
  }
  void take(void *dst, size_t n) {
    if (pos_ + n > bytes_.size())
      throw Error(ErrorCode::Internal,
                  "loom ring: truncated message between ranks");
    std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
  }
  const std::vector<uint8_t> &bytes_;
  size_t pos_ = 0;
};

struct RingRun {
  AttentionRequest request;
  ops::RingLayout layout = ops::RingLayout::Zigzag;
  int world = 1;
  std::string transport = "inproc";
  std::optional<std::string> timeline;
  std::chrono::milliseconds timeout = runtime::kDefaultCommTimeout;
  bool quiet = false;
};

std::array<int64_t, 4> shape4(const std::vector<int64_t> &s) {
  return {s[0], s[1], s[2], s[3]};
}

/// Rank 0's inputs (with shapes) to every rank.
void broadcastInputs(runtime::Communicator &comm, AttentionRequest &r) {
  Packer p;
  if (comm.rank() == 0)
    for (const NpyArray *a : {&r.q, &r.k, &r.v, &r.dO, &r.bias, &r.sinks}) {
      p.ints(a->shape);
      p.floats(a->data);
    }
  auto all = comm.allgather(p.bytes);
  if (comm.rank() == 0)
    return;
  Unpacker u(all[0]);
  for (NpyArray *a : {&r.q, &r.k, &r.v, &r.dO, &r.bias, &r.sinks}) {
    a->shape = u.ints();
    a->data = u.floats();
  }
  r.checkLoaded();
}

/// One rank's share of a whole float32 array, cast to the compute dtype.
ComputeTensor shard(const NpyArray &whole, const RingRun &run, int rank) {
  NpyArray local;
  local.shape = whole.shape;
  local.shape[1] /= run.world;
  local.data.resize(whole.data.size() / size_t(run.world));
  ops::shardSequence(ops::Tensor4::contiguous(whole.data.data(), DType::F32,
                                              shape4(whole.shape)),
                     local.data.data(), run.layout, rank, run.world);
  return toCompute(local, run.request.dtype);
}

void unshard(const std::vector<float> &local, NpyArray &whole,
             const RingRun &run, int rank) {
  ops::unshardSequence(local.data(),
                       ops::Tensor4::contiguous(whole.data.data(), DType::F32,
                                                shape4(whole.shape)),
                       run.layout, rank, run.world);
}

struct RankReport {
  ops::RingStats forward, backward;
  /// Wall seconds of the forward and backward calls, compiles included.
  std::array<double, 2> seconds{};
  /// --repeat: the first call's compile and cache ms on this rank's thread,
  /// and each later call's ms (forward, and backward with the grad options).
  double compileMs = 0;
  std::vector<double> runMs;
};

/// Fault injection for the fault tests (tests/lit/Tools/ring-mpi-faults.test),
/// so that they need no timing luck: LOOM_RING_TEST_FAULT=R:ACTION:WHEN
/// makes rank R stop (SIGSTOP: a hung process), die (SIGKILL) or exit
/// cleanly (exit, status 0) at WHEN: start (before rank 0 shares the
/// inputs), forward or backward (as that pass begins on the other ranks).
/// Returns true when this rank is to exit.
bool injectTestFault(int rank, const char *when) {
  const char *spec = std::getenv("LOOM_RING_TEST_FAULT");
  if (!spec)
    return false;
  std::string s = spec;
  size_t a = s.find(':'), b = s.find(':', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos)
    invalid(fmt::format("LOOM_RING_TEST_FAULT '{}' is not RANK:stop|kill|exit:WHEN", s));
  if (parseInt(s.substr(0, a), "LOOM_RING_TEST_FAULT rank") != rank || s.substr(b + 1) != when)
    return false;
  std::string action = s.substr(a + 1, b - a - 1);
  if (action == "exit")
    return true;
  if (action != "stop" && action != "kill")
    invalid(fmt::format("LOOM_RING_TEST_FAULT '{}': action '{}' is not stop, kill or exit", s,
                        action));
  std::raise(action == "stop" ? SIGSTOP : SIGKILL);
  return false;
}

/// Everything one rank does; rank 0 also writes the files and the summary.
void runRank(runtime::Communicator &comm, RingRun run) {
  AttentionRequest &r = run.request;
  int rank = comm.rank();
  if (injectTestFault(rank, "start"))
    return;
  if (rank == 0) {
    try {
      // Before any compute: a bad output path fails now, not after the run.
      std::vector<OutputPath> outputs = r.outputs();
      if (run.timeline)
        outputs.push_back({"--timeline", *run.timeline});
      checkOutputs("loom ring", outputs);
      r.load();
      int64_t parts =
          run.layout == ops::RingLayout::Zigzag ? 2 * run.world : run.world;
      if (r.q.shape[1] != r.k.shape[1] || r.q.shape[1] % parts != 0)
        invalid(fmt::format(
            "the {} layout over {} ranks needs seqlen_q == seqlen_k divisible "
            "by {}; got Q {} and K {}",
            ops::ringLayoutName(run.layout), run.world, parts,
            shapeString(r.q.shape), shapeString(r.k.shape)));
    } catch (const Error &e) {
      comm.abort(e.what());
      throw;
    }
  }
  broadcastInputs(comm, r);
  ComputeTensor q = shard(r.q, run, rank), k = shard(r.k, run, rank),
                v = shard(r.v, run, rank);
  ComputeTensor out = ComputeTensor::zeros(r.dtype, q.shape);
  std::vector<float> lse(size_t(q.shape[0] * q.shape[2] * q.shape[1]));
  ops::RingAttentionOptions options{r.options(), run.layout};
  // Rank 0 reports the progress of its own passes (every rank does about
  // the same work, the layouts balance it).
  ProgressLine progress("loom ring", rank == 0 && !run.quiet);
  double flops = attentionForwardFlops(r.q.shape[0], r.q.shape[1], r.k.shape[1], r.q.shape[2],
                                       r.q.shape[3],
                                       options.attention.causal || options.attention.variant.causal) /
                 run.world;
  progress.addPass("forward", flops);
  if (r.backward)
    progress.addPass("backward", kBackwardFlopRatio * flops);
  options.attention.progress = progress.reporter(0);
  RankReport report;
  auto secondsSince = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
        .count();
  };
  double cacheMs = runtime::KernelCache::threadMs();
  auto start = std::chrono::steady_clock::now();
  if (injectTestFault(rank, "forward"))
    return;
  ops::ringAttentionForward(comm, q.tensor(), k.tensor(), v.tensor(),
                            out.tensor(), lse.data(), options, &report.forward);
  report.seconds[0] = secondsSince(start);
  std::optional<ComputeTensor> dq, dk, dv;
  if (r.backward) {
    ComputeTensor dO = shard(r.dO, run, rank);
    start = std::chrono::steady_clock::now();
    dq = ComputeTensor::zeros(r.dtype, q.shape);
    dk = ComputeTensor::zeros(r.dtype, k.shape);
    dv = ComputeTensor::zeros(r.dtype, v.shape);
    if (injectTestFault(rank, "backward"))
      return;
    options.attention.progress = progress.reporter(1);
    ops::ringAttentionBackward(comm, q.tensor(), k.tensor(), v.tensor(),
                               out.tensor(), lse.data(), dO.tensor(),
                               dq->tensor(), dk->tensor(), dv->tensor(),
                               options, &report.backward);
    report.seconds[1] = secondsSince(start);
  }
  progress.finish();
  report.compileMs = runtime::KernelCache::threadMs() - cacheMs;
  // --repeat: the same calls again (collective: every rank runs them in
  // step), without step statistics; the outputs are the first call's.
  if (r.repeat > 0) {
    ComputeTensor out2 = out;
    std::vector<float> lse2 = lse;
    std::optional<ComputeTensor> dO, dq2 = dq, dk2 = dk, dv2 = dv;
    if (r.backward)
      dO = shard(r.dO, run, rank);
    options.attention.progress = {};
    for (int64_t i = 0; i < r.repeat; ++i) {
      auto t = std::chrono::steady_clock::now();
      ops::ringAttentionForward(comm, q.tensor(), k.tensor(), v.tensor(), out2.tensor(),
                                lse2.data(), options, nullptr);
      if (r.backward)
        ops::ringAttentionBackward(comm, q.tensor(), k.tensor(), v.tensor(), out2.tensor(),
                                   lse2.data(), dO->tensor(), dq2->tensor(), dk2->tensor(),
                                   dv2->tensor(), options, nullptr);
      report.runMs.push_back(1000 * secondsSince(t));
    }
  }

  // Outputs and step timings back to rank 0.
  Packer p;
  p.floats(toFloat32(out));
  p.floats(lse);
  for (auto *g : {&dq, &dk, &dv})
    p.floats(*g ? toFloat32(**g) : std::vector<float>{});
  for (const ops::RingStats *s : {&report.forward, &report.backward}) {
    std::vector<double> steps;
    for (const ops::RingStepTiming &t : s->steps)
      steps.insert(steps.end(),
                   {double(t.step), double(t.sourceRank), double(t.launches),
                    t.computeStart, t.computeEnd, double(t.hasTransfer),
                    t.transferStart, t.transferEnd});
    p.doubles(steps);
    p.ints({int64_t(s->workspaceBytes), int64_t(s->shardBytes)});
  }
  p.doubles({report.seconds[0], report.seconds[1]});
  p.doubles({report.compileMs});
  p.doubles(report.runMs);
  auto all = comm.allgather(p.bytes);
  if (rank != 0)
    return;

  int64_t B = r.q.shape[0], S = r.q.shape[1], H = r.q.shape[2];
  NpyArray O{r.q.shape, std::vector<float>(r.q.data.size())};
  NpyArray dQ{r.q.shape, std::vector<float>(r.backward ? r.q.data.size() : 0)};
  NpyArray dK{r.k.shape, std::vector<float>(r.backward ? r.k.data.size() : 0)};
  NpyArray dV{r.v.shape, std::vector<float>(r.backward ? r.v.data.size() : 0)};
  std::vector<float> L(size_t(B * H * S));
  std::vector<std::vector<ops::RingStats>> stats(2);
  std::array<double, 2> slowest{};
  std::vector<std::string> timing;
  double slowestCompile = 0;
  std::vector<double> slowestRun(size_t(r.repeat), 0.0);
  for (int src = 0; src < run.world; ++src) {
    Unpacker u(all[size_t(src)]);
    unshard(u.floats(), O, run, src);
    ops::unshardRows(u.floats().data(), L.data(), B, H, S, run.layout, src,
                     run.world);
    for (NpyArray *g : {&dQ, &dK, &dV}) {
      std::vector<float> local = u.floats();
      if (r.backward)
        unshard(local, *g, run, src);
    }
    for (int pass = 0; pass < 2; ++pass) {
      ops::RingStats s;
      s.rank = src, s.world = run.world, s.pass = pass ? "backward" : "forward";
      std::vector<double> f = u.doubles();
      for (size_t i = 0; i + 8 <= f.size(); i += 8)
        s.steps.push_back({int(f[i]), int(f[i + 1]), int(f[i + 2]), f[i + 3],
                           f[i + 4], f[i + 5] != 0, f[i + 6], f[i + 7]});
      auto bytes = u.ints();
      s.workspaceBytes = size_t(bytes[0]), s.shardBytes = size_t(bytes[1]);
      stats[size_t(pass)].push_back(s);
    }
    std::vector<double> seconds = u.doubles();
    for (size_t pass = 0; pass < 2; ++pass)
      slowest[pass] = std::max(slowest[pass], seconds[pass]);
    double compileMs = u.doubles().at(0);
    std::vector<double> runMs = u.doubles();
    slowestCompile = std::max(slowestCompile, compileMs);
    for (size_t i = 0; i < runMs.size() && i < slowestRun.size(); ++i)
      slowestRun[i] = std::max(slowestRun[i], runMs[i]);
    if (r.repeat > 0)
      timing.push_back(timingLine(fmt::format("rank {} ", src), compileMs, runMs));
  }
  // Per rank, then overall: the slowest rank's compile, and the median over
  // runs of each run's slowest rank (a ring call ends with its last rank).
  if (r.repeat > 0) {
    timing.push_back(timingLine("", slowestCompile, slowestRun));
    for (const std::string &line : timing)
      std::fprintf(stderr, "%s\n", line.c_str());
  }
  // --dbias/--dsinks too: summed over ranks, rank 0's are the whole.
  writeAttentionOutputs(r, O.data.data(), L.data(), dQ.data.data(), dK.data.data(),
                        dV.data.data());

  std::printf(
      "loom ring: %d ranks (%s), %s layout, %s, %s, %s backend: wrote %s%s\n",
      run.world, run.transport.c_str(), ops::ringLayoutName(run.layout),
      std::string(dtypeName(r.dtype)).c_str(), r.variant.label.c_str(),
      runtime::backendName(r.backend), r.outPath.c_str(),
      r.backward ? " and the gradients" : "");
  // Compiles are counted by this process's kernel cache: every rank's with
  // inproc, rank 0's with mpi.
  runtime::KernelCache::Stats compiles = runtime::KernelCache::global().stats();
  std::printf("loom ring: forward %.3f s%s (slowest rank, compiles included); "
              "%llu kernel compiles of %zu distinct kernels%s\n",
              slowest[0],
              r.backward ? fmt::format(", backward {:.3f} s", slowest[1]).c_str()
                         : "",
              static_cast<unsigned long long>(compiles.misses),
              compiles.compilesByKey.size(),
              run.transport == "mpi" ? " on rank 0" : "");
  std::printf("%-5s %-8s %12s %14s %10s %10s\n", "rank", "pass", "shards KiB",
              "workspace KiB", "steps ms", "overlap");
  for (int pass = 0; pass < (r.backward ? 2 : 1); ++pass)
    for (const ops::RingStats &s : stats[size_t(pass)]) {
      double total = s.steps.empty() ? 0
                                     : s.steps.back().computeEnd -
                                           s.steps.front().computeStart;
      double overlapped = s.overlappedMs(), bound = s.overlapBoundMs();
      std::printf("%-5d %-8s %12.1f %14.1f %10.2f %10s\n", s.rank,
                  pass ? "backward" : "forward", double(s.shardBytes) / 1024,
                  double(s.workspaceBytes) / 1024, total,
                  bound > 0
                      ? fmt::format("{:.0f}%", 100 * overlapped / bound).c_str()
                      : "-");
    }
  if (run.timeline) {
    std::vector<ops::RingStats> both = stats[0];
    if (r.backward)
      both.insert(both.end(), stats[1].begin(), stats[1].end());
    std::string json = ops::ringTimelineJson(both);
    AtomicFile f("loom ring", {"--timeline", *run.timeline});
    f.write(json.data(), json.size());
    f.commit();
    std::printf("loom ring: wrote the timeline to %s (Chrome trace format)\n",
                run.timeline->c_str());
  }
}

/// runRank, telling the other ranks when this one fails (so none waits for
/// it until the timeout).
void runRankOrAbort(runtime::Communicator &comm, const RingRun &run) {
  try {
    runRank(comm, run);
  } catch (const std::exception &e) {
    comm.abort(e.what());
    throw;
  }
}
} // namespace

int runRing(int argc, char **argv) {
  std::vector<std::string> names = attentionOptionNames();
  names.insert(names.end(),
               {"world", "layout", "transport", "timeline", "timeout"});
  Options opts("ring", names, {"quiet"});
  opts.parse(argc, argv, 2);
  RingRun run;
  run.request = parseAttentionRequest(opts, "ring");
  run.layout = ops::parseRingLayout(opts.get("layout").value_or("zigzag"));
  run.transport = opts.get("transport").value_or("inproc");
  run.timeline = opts.get("timeline");
  run.quiet = opts.flag("quiet");
  if (auto t = opts.get("timeout")) {
    int64_t seconds = parseInt(*t, "--timeout");
    if (seconds < 1)
      invalid(
          fmt::format("--timeout must be at least 1 second, got {}", seconds));
    // Deadlines are steady_clock nanoseconds: a huge --timeout would
    // overflow them; a week is beyond any real run.
    if (seconds > 7 * 24 * 3600)
      invalid(fmt::format("--timeout {} is more than a week ({} seconds)", seconds,
                          7 * 24 * 3600));
    run.timeout = std::chrono::seconds(seconds);
  }
  std::optional<int64_t> world;
  if (auto w = opts.get("world")) {
    world = parseInt(*w, "--world");
    if (*world < 1 || *world > 1024)
      invalid(
          fmt::format("--world must be between 1 and 1024, got {}", *world));
  }
  if (run.transport == "mpi") {
    auto comm = runtime::createMpiCommunicator(run.timeout);
    if (world && *world != comm->size())
      invalid(fmt::format("--world {} but mpirun started {} ranks", *world,
                          comm->size()));
    run.world = comm->size();
    try {
      runRankOrAbort(*comm, run);
    } catch (const std::exception &e) {
      // Returning would reach MPI_Finalize, which waits for every rank: a
      // stalled one never arrives and the job would hang. This rank's error
      // line first, then the job ends (runtime::Communicator::abortJob).
      std::fprintf(stderr, "loom: error: %s\n", e.what());
      comm->abortJob(e.what(), exitStatus(e));
    }
    return 0;
  }
  if (run.transport != "inproc")
    invalid(fmt::format("--transport '{}' is not one of inproc, mpi",
                        run.transport));
  run.world = int(world.value_or(4));
  // Rank 0's error is the cause when it has one; the others then report
  // that rank 0 failed.
  runtime::rethrowFirstError(runtime::runInProcessRanks(
      run.world, [&](runtime::Communicator &comm) { runRankOrAbort(comm, run); },
      run.timeout));
  return 0;
}

} // namespace loom::cli
