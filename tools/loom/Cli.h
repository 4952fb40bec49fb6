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
/// options are errors naming the option and the subcommand, and so is an
/// option given twice (`--timeout 5 --timeout 0` would otherwise silently
/// run with one of them), except the `repeatable` ones (each a valued
/// option documented as repeatable, such as --const).
class Options {
public:
  Options(std::string subcommand, std::vector<std::string> valued,
          std::vector<std::string> flags, std::vector<std::string> repeatable = {})
      : subcommand_(std::move(subcommand)), valued_(std::move(valued)),
        flags_(std::move(flags)), repeatable_(std::move(repeatable)) {}

  void parse(int argc, char **argv, int first);
  std::optional<std::string> get(const std::string &name) const;
  std::vector<std::string> getAll(const std::string &name) const;
  bool flag(const std::string &name) const;
  const std::string &subcommand() const { return subcommand_; }

private:
  std::string subcommand_;
  std::vector<std::string> valued_, flags_, repeatable_;
  std::multimap<std::string, std::string> values_;
  std::map<std::string, bool> set_;
};

/// The exit status for an error: 2 for bad input (InvalidArgument,
/// Unsupported), 1 for any other failure.
int exitStatus(const std::exception &e);

/// Parses "K=V" into a pair; throws InvalidArgument naming `what`.
std::pair<std::string, std::string> splitAssignment(const std::string &text,
                                                    const std::string &what);
int64_t parseInt(const std::string &text, const std::string &what);
/// parseInt, and the value must lie in [lo, hi]; the error names `what`,
/// the text and the range.
int64_t parseIntIn(const std::string &text, const std::string &what, int64_t lo, int64_t hi);

} // namespace loom::cli

#endif
