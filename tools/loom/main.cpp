//===- main.cpp - the loom command-line tool ------------------------------===//
#include "Cli.h"
#include "Commands.h"
#include "Usage.h"

#include "loom/Support/Error.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {
/// `loom COMMAND ... --help` or `-h` anywhere after the command.
bool asksForHelp(int argc, char **argv) {
  for (int i = 2; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h"))
      return true;
  return false;
}
} // namespace

int main(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "help") || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "-h")) {
    std::fputs(loom::cli::fullUsage().c_str(), argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string command = argv[1];
  if (command == "--version")
    command = "version";
  if (std::string usage = loom::cli::commandUsage(command); !usage.empty() && asksForHelp(argc, argv)) {
    std::fputs(usage.c_str(), stdout);
    return 0;
  }
  try {
    if (command == "demo")
      return loom::cli::runDemo(argc, argv);
    if (command == "compile")
      return loom::cli::runCompile(argc, argv);
    if (command == "attention")
      return loom::cli::runAttention(argc, argv);
    if (command == "ring")
      return loom::cli::runRing(argc, argv);
    if (command == "tune")
      return loom::cli::runTune(argc, argv);
    if (command == "profile")
      return loom::cli::runProfile(argc, argv);
    if (command == "cache")
      return loom::cli::runCache(argc, argv);
    if (command == "version")
      return loom::cli::runVersion(argc, argv);
    std::fprintf(stderr, "loom: error: unknown command '%s' (see loom --help)\n",
                 command.c_str());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "loom: error: %s\n", e.what());
    return loom::cli::exitStatus(e);
  }
}
