//===- ThreadPool.cpp -----------------------------------------------------===//
#include "ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace loom::runtime {
namespace {
class Pool {
public:
  Pool() {
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 1; i < n; ++i)
      threads_.emplace_back([this, i] { workerLoop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto &t : threads_)
      t.join();
  }
  unsigned size() const { return threads_.size() + 1; }

  void run(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn) {
    std::lock_guard<std::mutex> serial(runMutex_); // one parallel region at a time
    uint64_t chunks = std::min<uint64_t>(n, uint64_t(size()) * 4);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      total_ = n;
      numChunks_ = chunks;
      nextChunk_ = 0;
      pending_ = chunks;
      error_ = nullptr;
      ++generation_;
    }
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
        if (!job_ || nextChunk_ >= numChunks_)
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
  void workerLoop(unsigned worker) {
    uint64_t seen = 0;
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
  uint64_t total_ = 0, numChunks_ = 0, nextChunk_ = 0, pending_ = 0, generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

Pool &pool() {
  static Pool p;
  return p;
}
} // namespace

void parallelFor(uint64_t n, const std::function<void(unsigned, uint64_t, uint64_t)> &fn) {
  if (n == 0)
    return;
  pool().run(n, fn);
}
unsigned numWorkers() { return pool().size(); }

} // namespace loom::runtime
