//===- Cli.cpp ------------------------------------------------------------===//
#include "Cli.h"

#include <algorithm>
#include <charconv>

namespace loom::cli {

void Options::parse(int argc, char **argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-o")
      arg = "--o"; // the conventional short form of the output option
    if (arg.rfind("--", 0) != 0)
      throw Error(ErrorCode::InvalidArgument,
                  "loom " + subcommand_ + ": unexpected argument '" + arg + "'");
    std::string name = arg.substr(2), value;
    bool hasValue = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      hasValue = true;
    }
    if (std::find(flags_.begin(), flags_.end(), name) != flags_.end()) {
      if (hasValue)
        throw Error(ErrorCode::InvalidArgument,
                    "loom " + subcommand_ + ": option --" + name + " takes no value");
      if (set_.count(name))
        throw Error(ErrorCode::InvalidArgument,
                    "loom " + subcommand_ + ": option --" + name + " is given more than once");
      set_[name] = true;
      continue;
    }
    if (std::find(valued_.begin(), valued_.end(), name) == valued_.end())
      throw Error(ErrorCode::InvalidArgument,
                  "loom " + subcommand_ + ": unknown option '--" + name + "' (see loom --help)");
    if (!hasValue) {
      if (i + 1 >= argc)
        throw Error(ErrorCode::InvalidArgument,
                    "loom " + subcommand_ + ": option --" + name + " needs a value");
      value = argv[++i];
    }
    if (values_.count(name) &&
        std::find(repeatable_.begin(), repeatable_.end(), name) == repeatable_.end())
      throw Error(ErrorCode::InvalidArgument,
                  "loom " + subcommand_ + ": option --" + name + " is given more than once ('" +
                      values_.find(name)->second + "' and '" + value + "')");
    values_.emplace(name, value);
  }
}

std::optional<std::string> Options::get(const std::string &name) const {
  auto it = values_.find(name);
  if (it == values_.end())
    return std::nullopt;
  return it->second;
}

std::vector<std::string> Options::getAll(const std::string &name) const {
  std::vector<std::string> out;
  auto [b, e] = values_.equal_range(name);
  for (auto it = b; it != e; ++it)
    out.push_back(it->second);
  return out;
}

bool Options::flag(const std::string &name) const { return set_.count(name) != 0; }

int exitStatus(const std::exception &e) {
  auto *error = dynamic_cast<const Error *>(&e);
  return error && (error->code() == ErrorCode::InvalidArgument ||
                   error->code() == ErrorCode::Unsupported)
             ? 2
             : 1;
}

std::pair<std::string, std::string> splitAssignment(const std::string &text,
                                                    const std::string &what) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw Error(ErrorCode::InvalidArgument,
                what + " '" + text + "' is not of the form NAME=VALUE");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

int64_t parseInt(const std::string &text, const std::string &what) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range && ptr == text.data() + text.size())
    throw Error(ErrorCode::InvalidArgument,
                what + " '" + text + "' is out of range for a 64-bit integer");
  if (ec != std::errc() || ptr != text.data() + text.size())
    throw Error(ErrorCode::InvalidArgument, what + " '" + text + "' is not an integer");
  return v;
}

int64_t parseIntIn(const std::string &text, const std::string &what, int64_t lo, int64_t hi) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  bool whole = ptr == text.data() + text.size();
  if ((ec == std::errc() && whole && (v < lo || v > hi)) ||
      (ec == std::errc::result_out_of_range && whole))
    throw Error(ErrorCode::InvalidArgument, what + " '" + text + "' is out of range (" +
                                                std::to_string(lo) + ".." + std::to_string(hi) +
                                                ")");
  return parseInt(text, what);
}

} // namespace loom::cli
