//===- Tune.cpp - loom tune, loom cache -----------------------------------===//
//
//   loom tune --op attention --head-dim 128 --dtype bf16 --variant causal
//             --seqlen 8192 [--pass fwd|bwd] [--batch B] [--heads H]
//             [--backend auto|cpu|emu|cuda] [--arch sm_80] [--world P]
//             [--reps N] [--warmup N] [--max-timed N] [--force]
//   loom cache list
//   loom cache clear
//
// `tune` prints one row per config (status: timed ms, pruned: reason,
// failed, wrong output, invalid, skipped) and the winner, and stores it in
// $LOOM_CACHE_DIR/autotune/, where attentionForward/attentionBackward find
// it. A second run is a cache hit: nothing is compiled or timed.
//
//===----------------------------------------------------------------------===//
#include "Cli.h"
#include "Commands.h"

#include "loom/runtime/Communicator.h"
#include "loom/ops/AttentionTuning.h"

#include <cstdio>
#include <exception>
#include <fmt/format.h>
#include <thread>

namespace loom::cli {
namespace {

[[noreturn]] void invalid(const std::string &message) {
  throw Error(ErrorCode::InvalidArgument, "loom tune: " + message);
}

DType parseDType(const std::string &s) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  invalid(fmt::format("--dtype '{}' is not one of f32, f16, bf16", s));
}

void printTrials(const autotune::TuneResult &r) {
  std::printf("%4s %7s %7s %8s %5s %12s  %s\n", "#", "blockM", "blockN", "threads", "rank",
              "cost", "status");
  for (const autotune::Trial &t : r.trials) {
    std::string status;
    switch (t.status) {
    case autotune::TrialStatus::Timed: status = fmt::format("{:.3f} ms", t.medianMs); break;
    default:
      status = fmt::format("{}: {}", autotune::trialStatusName(t.status), t.reason);
    }
    if (t.resources)
      status += fmt::format("  [{} regs, {} B smem]", t.resources->registers,
                            t.resources->sharedBytes);
    auto knob = [&](const char *k) {
      auto it = t.config.find(k);
      return it == t.config.end() ? std::string("-") : std::to_string(it->second);
    };
    std::printf("%4zu %7s %7s %8s %5d %12.4g  %s\n", t.index, knob("blockM").c_str(),
                knob("blockN").c_str(), knob("numThreads").c_str(), t.rank, t.cost,
                status.c_str());
  }
}
} // namespace

int runTune(int argc, char **argv) {
  Options opts("tune",
               {"op", "head-dim", "dtype", "variant", "seqlen", "pass", "batch", "heads",
                "backend", "arch", "world", "reps", "warmup", "max-timed"},
               {"force"});
  opts.parse(argc, argv, 2);
  std::string op = opts.get("op").value_or("");
  if (op != "attention")
    invalid(op.empty() ? "--op is required (attention)"
                       : fmt::format("--op '{}' is not tunable (known: attention)", op));
  ops::AttentionTuningProblem p;
  p.headDim = parseInt(opts.get("head-dim").value_or("128"), "--head-dim");
  p.dtype = parseDType(opts.get("dtype").value_or("bf16"));
  std::string variant = opts.get("variant").value_or("none");
  if (variant == "causal")
    p.causal = true;
  else if (variant != "none")
    invalid(fmt::format("--variant '{}' is not one of none, causal", variant));
  p.seqlen = parseInt(opts.get("seqlen").value_or("8192"), "--seqlen");
  p.batch = parseInt(opts.get("batch").value_or("1"), "--batch");
  p.heads = parseInt(opts.get("heads").value_or("1"), "--heads");
  std::string pass = opts.get("pass").value_or("fwd");
  if (pass != "fwd" && pass != "bwd")
    invalid(fmt::format("--pass '{}' is not one of fwd, bwd", pass));
  p.pass = pass == "fwd" ? ops::AttentionPass::Forward : ops::AttentionPass::Backward;
  p.backend = runtime::resolveBackend(runtime::parseBackend(opts.get("backend").value_or("auto")));

  autotune::TuneOptions o;
  // Ranged before narrowing, so that 2^32 + 1 is an error rather than 1.
  o.repetitions = int(parseIntIn(opts.get("reps").value_or("7"), "--reps", 1, 1000000));
  o.warmup = int(parseIntIn(opts.get("warmup").value_or("1"), "--warmup", 0, 1000000));
  o.maxTimed =
      size_t(parseIntIn(opts.get("max-timed").value_or("0"), "--max-timed", 0, 1000000));
  o.force = opts.flag("force");
  // Prune on ptxas' report for the arch the kernel will run on: the GPU's
  // own, sm_80 for the emulated device; on the CPU only when asked.
  if (auto arch = opts.get("arch"))
    o.arch = *arch;
  else if (p.backend == runtime::Backend::Emu)
    o.arch = "sm_80";
  else if (p.backend == runtime::Backend::Cuda)
    o.arch = autotune::currentDeviceKey(p.backend).arch;
  if (!o.arch.empty())
    autotune::archLimits(o.arch); // a clear error for an unknown arch, before any work
  // Tuning can take minutes (NVRTC per config when pruning): one line per
  // config on stderr as soon as it is decided.
  o.onTrial = [](const autotune::Trial &t) {
    std::string what = t.status == autotune::TrialStatus::Timed
                           ? fmt::format("{:.3f} ms", t.medianMs)
                           : fmt::format("{}{}{}", autotune::trialStatusName(t.status),
                                         t.reason.empty() ? "" : ": ", t.reason);
    std::fprintf(stderr, "loom tune: #%zu %s (rank %d): %s\n", t.index,
                 autotune::configString(t.config).c_str(), t.rank, what.c_str());
  };
  int64_t world = parseInt(opts.get("world").value_or("1"), "--world");
  if (world < 1 || world > 256)
    invalid(fmt::format("--world must be in [1, 256], got {}", world));

  std::printf("tuning attention %s %s d%lld %s seqlen %lld (batch %lld, heads %lld) on %s%s\n",
              pass.c_str(), std::string(dtypeName(p.dtype)).c_str(), (long long)p.headDim,
              variant.c_str(), (long long)p.seqlen, (long long)p.batch, (long long)p.heads,
              runtime::backendName(p.backend),
              o.arch.empty() ? "" : fmt::format(", pruning for {}", o.arch).c_str());

  autotune::TuneResult r;
  if (world == 1) {
    r = ops::tuneAttention(p, o);
  } else {
    // In-process ranks (threads): the configs are split over them and the
    // results exchanged, as ranks on separate nodes would.
    std::vector<autotune::TuneResult> results(static_cast<size_t>(world));
    runtime::rethrowFirstError(runtime::runInProcessRanks(int(world), [&](runtime::Communicator &c) {
      results[size_t(c.rank())] = ops::tuneAttention(p, o, &c);
    }));
    r = results[0];
    for (int rank = 1; rank < world; ++rank)
      if (results[size_t(rank)].best != r.best)
        throw Error(ErrorCode::Internal, "loom tune: ranks disagree on the winner");
  }

  if (r.fromCache) {
    std::printf("cache hit: nothing compiled or timed (%.3f s)\n", r.seconds);
  } else {
    printTrials(r);
    std::printf("timed %zu, pruned %zu, invalid %zu, failed %zu, wrong output %zu, skipped "
                "%zu in %.2f s\n",
                r.count(autotune::TrialStatus::Timed), r.count(autotune::TrialStatus::Pruned),
                r.count(autotune::TrialStatus::Invalid), r.count(autotune::TrialStatus::Failed),
                r.count(autotune::TrialStatus::WrongOutput),
                r.count(autotune::TrialStatus::Skipped), r.seconds);
  }
  if (r.usedFallback) {
    std::printf("no config succeeded: keeping the default %s (nothing cached)\n",
                autotune::configString(r.best).c_str());
    return 1;
  }
  std::printf("winner: %s  %.3f ms%s\n", autotune::configString(r.best).c_str(), r.bestMs,
              world > 1 ? fmt::format(" (agreed by {} ranks)", world).c_str() : "");
  if (r.stored || r.fromCache)
    std::printf("cache: %s\n", r.cachePath.c_str());
  else
    std::printf("cache: not written (%s cannot be written; see the warning)\n",
                r.cachePath.c_str());
  return 0;
}

int runCache(int argc, char **argv) {
  if (argc < 3)
    throw Error(ErrorCode::InvalidArgument, "loom cache: expected 'list' or 'clear'");
  std::string what = argv[2];
  Options opts("cache " + what, {}, {});
  opts.parse(argc, argv, 3);
  autotune::TuningCache cache;
  if (what == "list") {
    auto files = cache.list();
    std::printf("%s: %zu file(s)\n", cache.directory().c_str(), files.size());
    for (const auto &f : files) {
      if (!f.valid) {
        std::printf("%s: corrupt (%s)\n", f.path.c_str(), f.error.c_str());
        continue;
      }
      std::printf("%s: %s %s (%s), driver %s, %s, Loom %s\n", f.path.c_str(),
                  f.device.backend.c_str(), f.device.model.c_str(), f.device.arch.c_str(),
                  f.device.driver.c_str(), f.device.nvrtc.c_str(), f.device.loom.c_str());
      for (const auto &[key, e] : f.entries)
        std::printf("  %s -> %s  %.3f ms  (timed %d, pruned %d, failed %d, %d rank(s), %s)\n",
                    key.c_str(), autotune::configString(e.config).c_str(), e.ms, e.timed,
                    e.pruned, e.failed, e.world, e.tunedAt.c_str());
    }
    return 0;
  }
  if (what == "clear") {
    size_t n = cache.clear();
    std::printf("removed %zu autotune cache file(s) from %s\n", n, cache.directory().c_str());
    return 0;
  }
  throw Error(ErrorCode::InvalidArgument,
              fmt::format("loom cache: unknown action '{}' (expected list or clear)", what));
}

} // namespace loom::cli
