//===- Usage.h - loom's help texts ------------------------------*- C++ -*-===//
#ifndef LOOM_TOOLS_LOOM_USAGE_H
#define LOOM_TOOLS_LOOM_USAGE_H

#include <string>

namespace loom::cli {
/// `loom --help`: every command with its options.
std::string fullUsage();
/// `loom COMMAND --help`: that command's usage, options and an example;
/// empty for an unknown command.
std::string commandUsage(const std::string &command);
} // namespace loom::cli

#endif
