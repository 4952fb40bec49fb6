// Ring attention (sequence parallelism) from a host C++ program.
//
//   mpirun -np 4 ./ring_attention [--layout zigzag] [--seqlen 512] ...
//   ./ring_attention --world 4        (no mpirun: ranks are threads)
//
// Every rank generates the same whole-sequence inputs from a fixed seed,
// keeps its shard of the tokens (ops::shardSequence), runs the ring forward
// and backward through a Loom communicator, and checks its shard of O, LSE,
// dQ, dK and dV against single-device Loom attention over the whole
// sequence (every rank computes that reference; fine at these sizes).
//
// Tolerance (max |ring - reference| / max |reference|, per tensor):
//   f32:  1e-4 (only the summation order differs: the ring merges per-step
//         partial results in f32);
//   bf16: 1e-2 (both round the same f32 accumulations to bf16 once, so
//         they differ by about one bf16 ulp, 2^-8 = 3.9e-3 relative).
#include "loom/Support/Error.h"
#include "loom/Support/HalfPrecision.h"
#include "loom/ops/RingAttention.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace loom;

namespace {
struct Args {
  ops::RingLayout layout = ops::RingLayout::Zigzag;
  int64_t seqlen = 512, heads = 4, dim = 64;
  DType dtype = DType::F32;
  bool causal = true;
  int world = 4; // without mpirun only
};

Args parse(int argc, char **argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw Error(ErrorCode::InvalidArgument, f + " needs a value");
      return argv[++i];
    };
    if (f == "--layout")
      a.layout = ops::parseRingLayout(value());
    else if (f == "--seqlen")
      a.seqlen = std::stoll(value());
    else if (f == "--heads")
      a.heads = std::stoll(value());
    else if (f == "--dim")
      a.dim = std::stoll(value());
    else if (f == "--world")
      a.world = std::stoi(value());
    else if (f == "--dtype") {
      std::string d = value();
      if (d != "f32" && d != "bf16")
        throw Error(ErrorCode::InvalidArgument, "--dtype must be f32 or bf16, got " + d);
      a.dtype = d == "f32" ? DType::F32 : DType::BF16;
    } else if (f == "--causal" || f == "--no-causal")
      a.causal = f == "--causal";
    else
      throw Error(ErrorCode::InvalidArgument,
                  "unknown option " + f +
                      " (expected --layout contiguous|zigzag|stripe, --seqlen N, --heads N, "
                      "--dim N, --dtype f32|bf16, --causal, --no-causal, --world P)");
  }
  return a;
}

/// A (1, seqlen, heads, dim) tensor's bytes in f32 or bf16.
struct Buffer {
  DType dtype;
  std::vector<uint8_t> bytes;
  std::array<int64_t, 4> shape;
  Buffer(DType t, std::array<int64_t, 4> s) : dtype(t), shape(s) {
    bytes.resize(size_t(s[0] * s[1] * s[2] * s[3]) * dtypeSize(t));
  }
  ops::Tensor4 tensor() const { return ops::Tensor4::contiguous(bytes.data(), dtype, shape); }
  float at(size_t i) const {
    if (dtype == DType::F32)
      return reinterpret_cast<const float *>(bytes.data())[i];
    return bf16ToFloat(reinterpret_cast<const uint16_t *>(bytes.data())[i]);
  }
  size_t size() const { return bytes.size() / dtypeSize(dtype); }
};

/// The same random values on every rank: a fixed seed per tensor.
Buffer random(DType t, std::array<int64_t, 4> shape, unsigned seed) {
  Buffer b(t, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.5f, 1.5f);
  for (size_t i = 0; i < b.size(); ++i) {
    float x = dist(gen);
    if (t == DType::F32)
      reinterpret_cast<float *>(b.bytes.data())[i] = x;
    else
      reinterpret_cast<uint16_t *>(b.bytes.data())[i] = floatToBf16(x);
  }
  return b;
}

/// max |got - want| / max |want| (NaN never passes).
double relativeError(size_t n, const std::function<double(size_t)> &got,
                     const std::function<double(size_t)> &want) {
  double err = 0, scale = 1e-6;
  for (size_t i = 0; i < n; ++i) {
    double e = std::fabs(double(got(i)) - double(want(i)));
    err = std::isnan(e) ? INFINITY : std::max(err, e);
    scale = std::max(scale, std::fabs(double(want(i))));
  }
  return err / scale;
}

std::string describeSteps(const char *pass, const ops::RingStats &s) {
  std::string text;
  char line[160];
  for (const ops::RingStepTiming &t : s.steps) {
    std::snprintf(line, sizeof line, "    %s step %d (K/V of rank %d): compute %7.2f ms", pass,
                  t.step, t.sourceRank, t.computeEnd - t.computeStart);
    text += line;
    if (t.hasTransfer) {
      std::snprintf(line, sizeof line, ", transfer %6.2f ms", t.transferEnd - t.transferStart);
      text += line;
    }
    text += "\n";
  }
  std::snprintf(line, sizeof line, "    %s overlap: %.2f of %.2f ms hidden (%s)\n", pass,
                s.overlappedMs(), s.overlapBoundMs(),
                s.overlapBoundMs() > 0
                    ? (std::to_string(int(100 * s.overlappedMs() / s.overlapBoundMs())) + "%").c_str()
                    : "no transfer");
  return text + line;
}

/// One rank's work. Returns false when its shard is outside the tolerance.
/// Reports reach rank 0 through the communicator, which prints them in order.
bool runRank(runtime::Communicator &comm, const Args &a) {
  int rank = comm.rank(), P = comm.size();
  int64_t S = a.seqlen, H = a.heads, D = a.dim, localS = S / P;
  std::array<int64_t, 4> whole{1, S, H, D}, local{1, localS, H, D};

  // Whole-sequence inputs (identical on every rank), then this rank's shard.
  Buffer q = random(a.dtype, whole, 1), k = random(a.dtype, whole, 2),
         v = random(a.dtype, whole, 3), dO = random(a.dtype, whole, 4);
  auto shard = [&](const Buffer &w) {
    Buffer l(a.dtype, local);
    ops::shardSequence(w.tensor(), l.bytes.data(), a.layout, rank, P);
    return l;
  };
  Buffer lq = shard(q), lk = shard(k), lv = shard(v), ldO = shard(dO);

  // Ring forward and backward over the communicator. The first call
  // JIT-compiles the kernels; the second is the one timed.
  ops::RingAttentionOptions options;
  options.layout = a.layout;
  options.attention.causal = a.causal;
  options.attention.backend = runtime::Backend::Cpu;
  Buffer o(a.dtype, local), dq(a.dtype, local), dk(a.dtype, local), dv(a.dtype, local);
  std::vector<float> lse(size_t(H * localS));
  ops::RingStats fwd, bwd;
  for (int call = 0; call < 2; ++call) {
    ops::ringAttentionForward(comm, lq.tensor(), lk.tensor(), lv.tensor(), o.tensor(), lse.data(),
                              options, &fwd);
    ops::ringAttentionBackward(comm, lq.tensor(), lk.tensor(), lv.tensor(), o.tensor(), lse.data(),
                               ldO.tensor(), dq.tensor(), dk.tensor(), dv.tensor(), options, &bwd);
  }

  // Single-device reference over the whole sequence, sharded like the ring.
  ops::AttentionOptions single = options.attention;
  Buffer O(a.dtype, whole), dQ(a.dtype, whole), dK(a.dtype, whole), dV(a.dtype, whole);
  std::vector<float> L(size_t(H * S)), lseRef(lse.size());
  ops::attentionForward(q.tensor(), k.tensor(), v.tensor(), O.tensor(), L.data(), single);
  ops::attentionBackward(q.tensor(), k.tensor(), v.tensor(), O.tensor(), L.data(), dO.tensor(),
                         dQ.tensor(), dK.tensor(), dV.tensor(), single);
  ops::shardRows(L.data(), lseRef.data(), 1, H, S, a.layout, rank, P);

  double tol = a.dtype == DType::F32 ? 1e-4 : 1e-2, worst = 0;
  std::string report;
  char line[160];
  std::snprintf(line, sizeof line, "rank %d/%d (%s):", rank, P, comm.transport());
  report += line;
  for (auto [name, got, full] : {std::tuple{"O", &o, &O}, std::tuple{"dQ", &dq, &dQ},
                                 std::tuple{"dK", &dk, &dK}, std::tuple{"dV", &dv, &dV}}) {
    Buffer want = shard(*full);
    double e = relativeError(
        got->size(), [&](size_t i) { return got->at(i); }, [&](size_t i) { return want.at(i); });
    worst = std::max(worst, std::isnan(e) ? INFINITY : e);
    std::snprintf(line, sizeof line, " %s %.1e", name, e);
    report += line;
  }
  double lseErr = relativeError(
      lse.size(), [&](size_t i) { return lse[i]; }, [&](size_t i) { return lseRef[i]; });
  worst = std::max(worst, lseErr);
  bool ok = worst < tol;
  std::snprintf(line, sizeof line, " LSE %.1e  max %.1e %s %.0e: %s\n", lseErr, worst,
                ok ? "<" : ">=", tol, ok ? "ok" : "FAILED");
  report += line + describeSteps("forward ", fwd) + describeSteps("backward", bwd);

  // Rank 0 prints every rank's report (in rank order, one process or many).
  std::vector<uint8_t> mine(report.begin(), report.end());
  mine.push_back(ok);
  auto all = comm.allgather(mine);
  bool allOk = true;
  for (auto &r : all) {
    allOk &= r.back() != 0;
    if (rank == 0)
      std::fwrite(r.data(), 1, r.size() - 1, stdout);
  }
  return allOk;
}

void printProblem(const Args &a) {
  std::printf("seqlen %lld, %lld heads, head dim %lld, %s, %s, %s layout\n", (long long)a.seqlen,
              (long long)a.heads, (long long)a.dim, a.dtype == DType::F32 ? "f32" : "bf16",
              a.causal ? "causal" : "non-causal", ops::ringLayoutName(a.layout));
}

/// Without mpirun: one thread per rank over in-process communicators.
bool runThreads(const Args &a) {
  std::vector<char> passed(size_t(a.world), 0);
  auto errors = runtime::runInProcessRanks(a.world, [&](runtime::Communicator &comm) {
    passed[size_t(comm.rank())] = runRank(comm, a);
  });
  bool ok = true;
  for (int r = 0; r < a.world; ++r) {
    if (errors[size_t(r)]) {
      try {
        std::rethrow_exception(errors[size_t(r)]);
      } catch (const std::exception &e) {
        std::fprintf(stderr, "rank %d: %s\n", r, e.what());
      }
    }
    ok &= passed[size_t(r)] != 0;
  }
  return ok;
}
} // namespace

int main(int argc, char **argv) {
  try {
    Args a = parse(argc, argv);
    bool ok;
    if (runtime::launchedByMpi()) {
      auto comm = runtime::createMpiCommunicator(); // MPI_COMM_WORLD
      a.world = comm->size();
      ops::ringShard(a.layout, a.seqlen, 0, a.world); // throws if seqlen does not divide
      if (comm->rank() == 0) {
        std::printf("ring attention over MPI: %d processes\n", comm->size());
        printProblem(a);
      }
      try {
        ok = runRank(*comm, a);
      } catch (const std::exception &e) {
        // After a communication error a peer may be stalled, and returning
        // would wait for it in MPI_Finalize forever: print this rank's
        // error, then end the job (MPI_Abort, see Communicator::abortJob).
        std::fprintf(stderr, "ring_attention: rank %d: %s\n", comm->rank(), e.what());
        comm->abortJob(e.what(), 1);
      }
    } else {
      std::printf("not started by mpirun: running %d in-process ranks as threads "
                  "(mpirun -np P %s for one process per rank)\n",
                  a.world, argv[0]);
      ops::ringShard(a.layout, a.seqlen, 0, a.world);
      printProblem(a);
      ok = runThreads(a);
    }
    return ok ? 0 : 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ring_attention: %s\n", e.what());
    return 1;
  }
}
