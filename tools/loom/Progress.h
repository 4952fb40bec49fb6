//===- Progress.h - the progress line of loom attention/ring ----*- C++ -*-===//
//
// A run that will take more than a few seconds prints how far it has come
// on stderr:
//
//   loom ring: progress: backward dK/dV, ring step 2/4, heads 128/512, 41% (est. 12 s left)
//
// The passes' FLOP counts weigh them (the backward does 3.5x the forward's
// block matmuls); the rate is measured from the kernels' progress reports
// (ops::AttentionOptions::progress), and the estimate from both, as `loom
// tune` times each config. On a terminal the line is rewritten in place
// (\r); otherwise a line is printed when the run is found to be long and
// then every few seconds. --quiet turns it off. LOOM_PROGRESS_AFTER_MS
// (default 3000) is the estimated run time from which the line shows; 0
// shows it for every run, from the first report (for tests).
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_TOOLS_LOOM_PROGRESS_H
#define LOOM_TOOLS_LOOM_PROGRESS_H

#include "loom/ops/Attention.h"

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace loom::cli {

/// Multiply-adds x 2 of attention's forward (QK^T and PV) over the whole
/// problem, halved for causal masks.
double attentionForwardFlops(int64_t batch, int64_t seqlenQ, int64_t seqlenK, int64_t heads,
                             int64_t headDim, bool causal);

/// The backward's FLOPs over the forward's: 7 block matmuls (dQ 3, dK/dV 4)
/// against 2.
inline constexpr double kBackwardFlopRatio = 3.5;

class ProgressLine {
public:
  /// `command` prefixes the line ("loom attention"); nothing is printed
  /// when `enabled` is false.
  ProgressLine(std::string command, bool enabled);
  ~ProgressLine();
  /// Declares the next pass ("forward", "backward") and its FLOPs.
  void addPass(std::string name, double flops);
  /// The callback for pass `index` (null when disabled).
  std::function<void(const ops::AttentionProgress &)> reporter(size_t index);
  /// Ends the line once the run is over (a last update at 100% if shown).
  void finish();

private:
  void update(size_t pass, const ops::AttentionProgress &p);
  void print(bool final);

  std::string command_;
  bool enabled_, tty_;
  int64_t afterMs_;
  std::vector<std::pair<std::string, double>> passes_;
  std::mutex mutex_;
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_, firstReport_, lastPrint_;
  bool reported_ = false, shown_ = false, finished_ = false;
  double firstFraction_ = 0, fraction_ = 0, secondsLeft_ = -1;
  std::string state_;
};

} // namespace loom::cli

#endif
