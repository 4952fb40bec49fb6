//===- ConfigSpace.cpp ----------------------------------------------------===//
#include "loom/autotune/ConfigSpace.h"

#include "loom/Support/Error.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>

namespace loom::autotune {

std::string configString(const Config &config) {
  std::string out;
  for (const auto &[k, v] : config)
    out += fmt::format("{}{}={}", out.empty() ? "" : ",", k, v);
  return out;
}

Config parseConfig(const std::string &text) {
  Config config;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string term = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                     : comma - start);
    size_t eq = term.find('=');
    char *end = nullptr;
    long long v = eq == std::string::npos ? 0 : std::strtoll(term.c_str() + eq + 1, &end, 10);
    if (eq == std::string::npos || eq == 0 || eq + 1 == term.size() || *end != '\0')
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("config '{}': term '{}' is not NAME=INTEGER", text, term));
    config[term.substr(0, eq)] = v;
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return config;
}

ConfigSpace &ConfigSpace::knob(std::string name, std::vector<int64_t> values) {
  if (values.empty())
    throw Error(ErrorCode::InvalidArgument, fmt::format("knob '{}' has no values", name));
  knobs_.push_back({std::move(name), std::move(values)});
  return *this;
}

ConfigSpace &ConfigSpace::constraint(Constraint c) {
  constraint_ = std::move(c);
  return *this;
}

std::vector<Config> ConfigSpace::enumerate() const {
  std::vector<Config> out(1);
  for (const Knob &k : knobs_) {
    std::vector<Config> next;
    for (const Config &c : out)
      for (int64_t v : k.values) {
        Config n = c;
        n[k.name] = v;
        next.push_back(std::move(n));
      }
    out = std::move(next);
  }
  if (knobs_.empty())
    out.clear();
  return out;
}

std::optional<std::string> ConfigSpace::invalidReason(const Config &config) const {
  return constraint_ ? constraint_(config) : std::nullopt;
}

bool ConfigSpace::contains(const Config &config) const {
  for (const Knob &k : knobs_) {
    auto it = config.find(k.name);
    if (it == config.end() ||
        std::find(k.values.begin(), k.values.end(), it->second) == k.values.end())
      return false;
  }
  return true;
}

} // namespace loom::autotune
