//===- Progress.cpp - the progress line of loom attention/ring ------------===//
#include "Progress.h"

#include "Cli.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <unistd.h>

namespace loom::cli {
namespace {
constexpr int64_t kDefaultAfterMs = 3000;
/// Between two lines when stderr is not a terminal, and between two
/// rewrites when it is.
constexpr double kLogIntervalS = 5, kTtyIntervalS = 0.1;

int64_t afterMsFromEnvironment() {
  const char *text = std::getenv("LOOM_PROGRESS_AFTER_MS");
  if (!text || !*text)
    return kDefaultAfterMs;
  return parseIntIn(text, "LOOM_PROGRESS_AFTER_MS", 0, int64_t(1) << 40);
}

std::string stageLabel(const std::string &pass, const char *stage) {
  std::string s = stage;
  if (s == "dq")
    return pass + " dQ";
  if (s == "dkdv")
    return pass + " dK/dV";
  return pass;
}
} // namespace

double attentionForwardFlops(int64_t batch, int64_t seqlenQ, int64_t seqlenK, int64_t heads,
                             int64_t headDim, bool causal) {
  double flops = 4.0 * double(batch) * double(heads) * double(seqlenQ) * double(seqlenK) *
                 double(headDim);
  return causal ? flops / 2 : flops;
}

ProgressLine::ProgressLine(std::string command, bool enabled)
    : command_(std::move(command)), enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1),
      afterMs_(enabled ? afterMsFromEnvironment() : 0), start_(Clock::now()) {}

ProgressLine::~ProgressLine() {
  // A run that failed leaves a terminal line unfinished: end it, so the
  // error starts on its own line.
  std::lock_guard<std::mutex> lock(mutex_);
  if (shown_ && tty_ && !finished_)
    std::fputc('\n', stderr);
}

void ProgressLine::addPass(std::string name, double flops) {
  passes_.emplace_back(std::move(name), std::max(flops, 1.0));
}

std::function<void(const ops::AttentionProgress &)> ProgressLine::reporter(size_t index) {
  if (!enabled_)
    return nullptr;
  return [this, index](const ops::AttentionProgress &p) { update(index, p); };
}

void ProgressLine::update(size_t pass, const ops::AttentionProgress &p) {
  std::lock_guard<std::mutex> lock(mutex_);
  double total = 0, before = 0;
  for (size_t i = 0; i < passes_.size(); ++i) {
    total += passes_[i].second;
    if (i < pass)
      before += passes_[i].second;
  }
  double fraction =
      std::clamp((before + passes_[pass].second * std::clamp(p.fraction, 0.0, 1.0)) / total,
                 0.0, 1.0);
  Clock::time_point now = Clock::now();
  // The rate is measured from the first report on, so that the compiles
  // before it do not count as work.
  if (!reported_) {
    reported_ = true;
    firstReport_ = now, firstFraction_ = fraction;
  }
  double measured = std::chrono::duration<double>(now - firstReport_).count();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  secondsLeft_ = fraction > firstFraction_ && measured > 0
                     ? (1 - fraction) * measured / (fraction - firstFraction_)
                     : -1;
  fraction_ = fraction;
  state_ = stageLabel(passes_[pass].first, p.stage);
  if (p.steps > 1)
    state_ += fmt::format(", ring step {}/{}", p.step + 1, p.steps);
  state_ += fmt::format(", heads {}/{}", p.headsDone, p.heads);
  if (!shown_) {
    bool longRun = secondsLeft_ >= 0 && (elapsed + secondsLeft_) * 1000 >= double(afterMs_);
    if (afterMs_ > 0 && (!longRun || fraction >= 1))
      return;
    shown_ = true;
    print(false);
    return;
  }
  double sincePrint = std::chrono::duration<double>(now - lastPrint_).count();
  if (sincePrint >= (tty_ ? kTtyIntervalS : kLogIntervalS))
    print(false);
}

void ProgressLine::print(bool final) {
  std::string estimate = final ? fmt::format(" (done in {:.1f} s)",
                                             std::chrono::duration<double>(Clock::now() - start_)
                                                 .count())
                         : secondsLeft_ >= 0 ? fmt::format(" (est. {:.0f} s left)", secondsLeft_)
                                             : std::string();
  std::string line = fmt::format("{}: progress: {}, {:.0f}%{}", command_, state_,
                                 std::floor(100 * fraction_), estimate);
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  lastPrint_ = Clock::now();
}

void ProgressLine::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!shown_ || finished_)
    return;
  finished_ = true;
  fraction_ = 1;
  print(true);
}

} // namespace loom::cli
