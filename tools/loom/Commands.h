//===- Commands.h - loom CLI subcommands ------------------------*- C++ -*-===//
#ifndef LOOM_TOOLS_LOOM_COMMANDS_H
#define LOOM_TOOLS_LOOM_COMMANDS_H

namespace loom::cli {
int runDemo(int argc, char **argv);
int runCompile(int argc, char **argv);
int runAttention(int argc, char **argv);
int runRing(int argc, char **argv);
int runVersion(int argc, char **argv);
int runTune(int argc, char **argv);
int runCache(int argc, char **argv);
int runProfile(int argc, char **argv);
} // namespace loom::cli

#endif
