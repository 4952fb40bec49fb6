//===- Cli.h - small argument parser for the loom CLI -----------*- C++ -*-===//
#ifndef LOOM_TOOLS_LOOM_CLI_H
#define LOOM_TOOLS_LOOM_CLI_H

#include "loom/Support/Error.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace loom::cli {

/// `--name value` / `--name=value` options and `--flag` switches; unknown
/// options are errors naming the option and the subcommand.
class Options {
public:
  Options(std::string subcommand, std::vector<std::string> valued,
          std::vector<std::string> flags)
      : subcommand_(std::move(subcommand)), valued_(std::move(valued)),
        flags_(std::move(flags)) {}

  void parse(int argc, char **argv, int first);
  std::optional<std::string> get(const std::string &name) const;
  std::vector<std::string> getAll(const std::string &name) const;
  bool flag(const std::string &name) const;

private:
  std::string subcommand_;
  std::vector<std::string> valued_, flags_;
  std::multimap<std::string, std::string> values_;
  std::map<std::string, bool> set_;
};

/// Parses "K=V" into a pair; throws InvalidArgument naming `what`.
std::pair<std::string, std::string> splitAssignment(const std::string &text,
                                                    const std::string &what);
int64_t parseInt(const std::string &text, const std::string &what);

} // namespace loom::cli

#endif
