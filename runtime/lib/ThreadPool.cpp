//===- ThreadPool.cpp -----------------------------------------------------===//
#include "loom/runtime/ThreadPool.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fmt/format.h>
#include <mutex>
#include <thread>
#include <vector>

namespace loom::runtime {

unsigned parseCpuThreads(const std::string &text, const std::string &what) {
  // from_chars takes no sign, space or suffix: "+4", " 4", "4x" are refused.
  long long v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  bool ok = ec == std::errc() && ptr == text.data() + text.size();
  if (!ok || v < 1 || v > kMaxCpuThreads)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{} '{}' is not a thread count; expected an integer in [1, {}]",
                            what, text, kMaxCpuThreads));
  return unsigned(v);
}

unsigned defaultCpuThreads() {
  if (const char *env = std::getenv("LOOM_NUM_THREADS"); env && *env)
    return parseCpuThreads(env, "LOOM_NUM_THREADS");
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {
class Pool {
public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto &t : threads_)
      t.join();
  }

  void run(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn,
           unsigned threads) {
    std::lock_guard<std::mutex> serial(runMutex_); // one parallel region at a time
    // Chunks of a few per thread balance programs of unequal cost (causal
    // query blocks late in the grid see more keys) at one lock per chunk.
    uint64_t chunks = std::min<uint64_t>(n, uint64_t(threads) * 16);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Grow before publishing the job: a new worker starts at the current
      // generation and so takes part in this run.
      for (unsigned i = threads_.size() + 1; i < threads; ++i)
        threads_.emplace_back([this, i, g = generation_] { workerLoop(i, g); });
      job_ = &fn;
      active_ = threads;
      total_ = n;
      numChunks_ = chunks;
      nextChunk_ = 0;
      pending_ = chunks;
      error_ = nullptr;
      ++generation_;
    }
    if (threads > 1)
      wake_.notify_all();
    work(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (error_)
      std::rethrow_exception(error_);
  }

private:
  void work(unsigned worker) {
    for (;;) {
      uint64_t c;
      const std::function<void(unsigned, uint64_t, uint64_t)> *job;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!job_ || worker >= active_ || nextChunk_ >= numChunks_)
          return;
        c = nextChunk_++;
        job = job_;
      }
      uint64_t begin = total_ * c / numChunks_, end = total_ * (c + 1) / numChunks_;
      try {
        (*job)(worker, begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_)
          error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0)
        done_.notify_all();
    }
  }
  void workerLoop(unsigned worker, uint64_t seen) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_)
          return;
        seen = generation_;
      }
      work(worker);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mutex_, runMutex_;
  std::condition_variable wake_, done_;
  const std::function<void(unsigned, uint64_t, uint64_t)> *job_ = nullptr;
  unsigned active_ = 1;
  uint64_t total_ = 0, numChunks_ = 0, nextChunk_ = 0, pending_ = 0, generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

Pool &pool() {
  static Pool p;
  return p;
}
} // namespace

void parallelFor(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn,
                 unsigned threads) {
  if (n == 0)
    return;
  if (threads == 0)
    threads = defaultCpuThreads();
  if (threads > kMaxCpuThreads)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("parallelFor: {} threads exceeds the limit of {}", threads,
                            kMaxCpuThreads));
  pool().run(n, fn, std::max(1u, threads));
}

} // namespace loom::runtime
