//===- Tuner.cpp - prune, order, time, verify, pick, remember -------------===//
#include "loom/autotune/Tuner.h"

#include "loom/Support/Error.h"
#include "loom/autotune/Json.h"
#include "loom/cuda/Driver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fmt/format.h>

namespace loom::autotune {

const char *trialStatusName(TrialStatus s) {
  switch (s) {
  case TrialStatus::Invalid: return "invalid";
  case TrialStatus::Pruned: return "pruned";
  case TrialStatus::Skipped: return "skipped";
  case TrialStatus::Failed: return "failed";
  case TrialStatus::WrongOutput: return "wrong output";
  case TrialStatus::Timed: return "timed";
  }
  return "?";
}

size_t TuneResult::count(TrialStatus s) const {
  return size_t(std::count_if(trials.begin(), trials.end(),
                              [&](const Trial &t) { return t.status == s; }));
}

double median(std::vector<double> xs) {
  if (xs.empty())
    return -1;
  std::sort(xs.begin(), xs.end());
  size_t n = xs.size();
  return n % 2 ? xs[n / 2] : 0.5 * (xs[n / 2 - 1] + xs[n / 2]);
}

double cudaEventMs(const std::function<void()> &work) {
  cuda::Event start, end;
  start.record(nullptr);
  work();
  end.record(nullptr);
  end.synchronize();
  return cuda::Event::elapsedMs(start, end);
}

namespace {
using Clock = std::chrono::steady_clock;

/// Prunes, orders and times this rank's share of the configs.
std::vector<Trial> runShare(const Tunable &t, const std::vector<Config> &configs, int rank,
                            int world, const TuneOptions &o, size_t &runs) {
  std::vector<Trial> mine;
  std::optional<ArchLimits> limits;
  if (!o.arch.empty() && t.resources)
    limits = archLimits(o.arch);
  for (size_t i = size_t(rank); i < configs.size(); i += size_t(world)) {
    Trial tr;
    tr.index = i;
    tr.config = configs[i];
    tr.rank = rank;
    tr.status = TrialStatus::Skipped; // survivors are marked below
    if (auto why = t.space.invalidReason(tr.config)) {
      tr.status = TrialStatus::Invalid;
      tr.reason = *why;
    } else if (limits) {
      try {
        tr.resources = t.resources(tr.config, o.arch);
        unsigned threads = t.threads ? t.threads(tr.config) : 128;
        if (auto why = pruneReason(*tr.resources, threads, *limits, o.minOccupancy)) {
          tr.status = TrialStatus::Pruned;
          tr.reason = *why;
        }
      } catch (const std::exception &e) {
        tr.status = TrialStatus::Failed;
        tr.reason = fmt::format("compile: {}", e.what());
      }
    }
    if (tr.status == TrialStatus::Skipped && t.cost)
      tr.cost = t.cost(tr.config);
    if (tr.status != TrialStatus::Skipped && o.onTrial)
      o.onTrial(tr);
    mine.push_back(std::move(tr));
  }
  std::vector<Trial *> order;
  for (Trial &tr : mine)
    if (tr.status == TrialStatus::Skipped)
      order.push_back(&tr);
  std::stable_sort(order.begin(), order.end(), [](const Trial *a, const Trial *b) {
    return a->cost < b->cost || (a->cost == b->cost && a->index < b->index);
  });
  int sets = std::max(t.inputSets, 1);
  // One rotation over all runs of this rank: consecutive runs (also across
  // configs) always use different input sets, so no run finds its inputs in
  // the caches the previous run filled.
  int n = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    Trial &tr = *order[k];
    if (o.maxTimed && k >= o.maxTimed) {
      tr.reason = fmt::format("cost rank {} > --max-timed {}", k + 1, o.maxTimed);
      if (o.onTrial)
        o.onTrial(tr);
      continue;
    }
    try {
      std::vector<bool> used(size_t(sets), false);
      for (int w = 0; w < o.warmup; ++w, ++n, ++runs) {
        used[size_t(n % sets)] = true;
        t.run(tr.config, n % sets);
      }
      std::vector<double> ms;
      for (int k2 = 0; k2 < std::max(o.repetitions, 1); ++k2, ++n, ++runs) {
        used[size_t(n % sets)] = true;
        ms.push_back(t.run(tr.config, n % sets));
      }
      tr.medianMs = median(ms);
      tr.status = TrialStatus::Timed;
      // Every input set this config ran on holds its output now.
      if (t.verify)
        for (int s = 0; s < sets; ++s)
          if (used[size_t(s)])
            if (auto why = t.verify(tr.config, s)) {
              tr.status = TrialStatus::WrongOutput;
              tr.reason = fmt::format("input set {}: {}", s, *why);
              break;
            }
    } catch (const std::exception &e) {
      ++n; // the failed run used its set
      tr.status = TrialStatus::Failed;
      tr.reason = e.what();
    }
    if (o.onTrial)
      o.onTrial(tr);
  }
  return mine;
}

Json trialJson(const Trial &tr) {
  Json j = Json::object();
  j["index"] = int64_t(tr.index);
  j["status"] = int(tr.status);
  j["reason"] = tr.reason;
  j["ms"] = tr.medianMs;
  j["cost"] = tr.cost;
  j["rank"] = tr.rank;
  if (tr.resources) {
    Json &r = j["resources"] = Json::object();
    r["registers"] = tr.resources->registers;
    r["shared"] = tr.resources->sharedBytes;
    r["spillStores"] = tr.resources->spillStoreBytes;
    r["spillLoads"] = tr.resources->spillLoadBytes;
  }
  return j;
}

Trial trialFromJson(const Json &j, const std::vector<Config> &configs) {
  Trial tr;
  tr.index = size_t(j.at("index").number());
  if (tr.index >= configs.size())
    throw Error(ErrorCode::Internal,
                fmt::format("autotune: a rank sent config index {} of {}", tr.index,
                            configs.size()));
  tr.config = configs[tr.index];
  tr.status = TrialStatus(int(j.at("status").number()));
  tr.reason = j.at("reason").string();
  tr.medianMs = j.at("ms").number();
  tr.cost = j.at("cost").number();
  tr.rank = int(j.at("rank").number());
  if (j.contains("resources")) {
    const Json &r = j.at("resources");
    cuda::KernelResources res;
    res.registers = int(r.at("registers").number());
    res.sharedBytes = int(r.at("shared").number());
    res.spillStoreBytes = int(r.at("spillStores").number());
    res.spillLoadBytes = int(r.at("spillLoads").number());
    tr.resources = res;
  }
  return tr;
}

std::vector<uint8_t> bytesOf(const std::string &s) { return {s.begin(), s.end()}; }
std::string textOf(const std::vector<uint8_t> &b) { return {b.begin(), b.end()}; }

TuneResult tuneImpl(runtime::Communicator *comm, const Tunable &t, const DeviceKey &device,
                    TuningCache &cache, const TuneOptions &o) {
  auto start = Clock::now();
  int world = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  TuneResult result;
  result.cachePath = cache.pathFor(device);
  std::string key = t.cacheKey();
  auto finish = [&]() -> TuneResult {
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  };

  // An unwritable cache costs the stored winner, never the tuning: checked
  // before anything is timed, and a failing store is a warning.
  bool writeCache = o.writeCache;
  if (std::string why = writeCache ? cache.whyUnwritable(device) : ""; !why.empty()) {
    std::fprintf(stderr, "loom: warning: %s; tuning without storing the winner\n",
                 why.c_str());
    writeCache = false;
  }
  auto store = [&](const CacheEntry &e) {
    try {
      cache.store(device, key, e);
      result.stored = true;
    } catch (const Error &error) {
      std::fprintf(stderr, "loom: warning: the winner was not stored: %s\n", error.what());
    }
  };
  std::optional<CacheEntry> hit;
  if (o.readCache && !o.force)
    hit = cache.lookup(device, key);
  if (comm) {
    // One decision for every rank: rank 0's cache entry if it has one, else
    // everyone tunes. Also checks that all ranks are one kind of node.
    Json mine = Json::object();
    mine["device"] = device.id();
    mine["hit"] = hit ? configString(hit->config) : std::string();
    mine["ms"] = hit ? hit->ms : 0.0;
    auto all = comm->allgather(bytesOf(mine.dump()));
    Json first = Json::parse(textOf(all.at(0)));
    for (size_t q = 1; q < all.size(); ++q) {
      std::string other = Json::parse(textOf(all[q])).at("device").string();
      if (other != first.at("device").string())
        throw Error(ErrorCode::InvalidArgument,
                    fmt::format("autotune: cluster tuning needs one kind of node, but rank {} "
                                "is '{}' and rank 0 is '{}'",
                                q, other, first.at("device").string()));
    }
    std::string rank0 = first.at("hit").string();
    if (rank0.empty()) {
      hit.reset();
    } else {
      bool had = hit.has_value();
      CacheEntry e = had ? *hit : CacheEntry{};
      e.config = parseConfig(rank0);
      e.ms = first.at("ms").number();
      hit = e;
      if (!had && writeCache)
        store(e);
    }
  }
  if (hit) {
    result.best = hit->config;
    result.bestMs = hit->ms;
    result.fromCache = true;
    return finish();
  }

  std::vector<Config> configs = t.space.enumerate();
  std::vector<Trial> trials = runShare(t, configs, rank, world, o, result.runs);
  if (comm) {
    Json mine = Json::array();
    for (const Trial &tr : trials)
      mine.push(trialJson(tr));
    auto all = comm->allgather(bytesOf(mine.dump()));
    trials.clear();
    for (const auto &bytes : all) {
      Json theirs = Json::parse(textOf(bytes));
      for (const Json &j : theirs.elements())
        trials.push_back(trialFromJson(j, configs));
    }
  }
  std::sort(trials.begin(), trials.end(),
            [](const Trial &a, const Trial &b) { return a.index < b.index; });
  result.trials = std::move(trials);

  // Same merged list on every rank -> same winner on every rank.
  const Trial *best = nullptr;
  for (const Trial &tr : result.trials)
    if (tr.status == TrialStatus::Timed && (!best || tr.medianMs < best->medianMs))
      best = &tr;
  if (!best) {
    result.best = t.fallback;
    result.usedFallback = true;
    return finish();
  }
  result.best = best->config;
  result.bestMs = best->medianMs;
  if (writeCache) {
    CacheEntry e;
    e.config = best->config;
    e.ms = best->medianMs;
    e.timed = int(result.count(TrialStatus::Timed));
    e.pruned = int(result.count(TrialStatus::Pruned) + result.count(TrialStatus::Invalid));
    e.failed = int(result.count(TrialStatus::Failed) + result.count(TrialStatus::WrongOutput));
    e.world = world;
    store(e);
  }
  if (comm)
    comm->barrier(); // every rank's file is written when any rank returns
  return finish();
}
} // namespace

TuneResult tune(const Tunable &t, const DeviceKey &device, TuningCache &cache,
                const TuneOptions &options) {
  return tuneImpl(nullptr, t, device, cache, options);
}

TuneResult tuneCluster(runtime::Communicator &comm, const Tunable &t, const DeviceKey &device,
                       TuningCache &cache, const TuneOptions &options) {
  try {
    return tuneImpl(&comm, t, device, cache, options);
  } catch (const Error &e) {
    // Tell the other ranks instead of leaving them waiting for the deadline.
    if (e.code() != ErrorCode::PeerFailed && e.code() != ErrorCode::CommTimeout)
      comm.abort(e.what());
    throw;
  } catch (const std::exception &e) {
    comm.abort(e.what());
    throw;
  }
}

} // namespace loom::autotune
