//===- ConfigSpace.h - the knobs a kernel can be tuned over -----*- C++ -*-===//
//
// A config space is declared next to its kernel (attention: ops/lib/
// AttentionTuning.cpp): named integer knobs, each with its candidate values,
// and a constraint rejecting combinations the kernel cannot run (with the
// reason, which the tuner records). Configs are enumerated in a fixed order
// (the cartesian product, last knob fastest), so a config's index is the
// same on every rank of a cluster and in every process.
//
//===----------------------------------------------------------------------===//
#ifndef LOOM_AUTOTUNE_CONFIGSPACE_H
#define LOOM_AUTOTUNE_CONFIGSPACE_H

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom::autotune {

/// Knob name -> value. Sorted by name, so its text form is canonical.
using Config = std::map<std::string, int64_t>;

/// "blockM=64,blockN=32,numThreads=128".
std::string configString(const Config &config);
/// Parses configString()'s form; throws InvalidArgument naming the text.
Config parseConfig(const std::string &text);

struct Knob {
  std::string name;
  std::vector<int64_t> values;
};

class ConfigSpace {
public:
  /// Returns the reason a config is invalid, or nullopt when it is valid.
  using Constraint = std::function<std::optional<std::string>(const Config &)>;

  ConfigSpace &knob(std::string name, std::vector<int64_t> values);
  ConfigSpace &constraint(Constraint c);

  const std::vector<Knob> &knobs() const { return knobs_; }
  /// Every combination of knob values, constraint not applied.
  std::vector<Config> enumerate() const;
  /// The constraint's verdict (nullopt when no constraint).
  std::optional<std::string> invalidReason(const Config &config) const;
  /// True when every knob of the space has a value of the space in `config`.
  bool contains(const Config &config) const;

private:
  std::vector<Knob> knobs_;
  Constraint constraint_;
};

} // namespace loom::autotune

#endif
